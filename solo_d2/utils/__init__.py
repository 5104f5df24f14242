"""Small helpers every room may use: whole-or-nothing file writes and the weights path manager
(file_io), agreements between processes (comm), exit statuses (exit_status), command lines (cli)."""
