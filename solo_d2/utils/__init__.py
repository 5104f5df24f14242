"""Small helpers every room may use: whole-or-nothing file writes and the weights path manager
(``file_io``), agreements between processes (``comm``), and what every command line shares (``cli``)."""
