"""solo_d2.launch.cluster_env: where a process sits in a torchrun / srun launch, read from the
launcher's variables (values as torchrun and srun set them, checked by hand)."""

import pytest

from launch_helpers import FAKE_BIN, slurm_env
from solo_d2.launch.cluster_env import (
    ClusterEnv,
    ClusterEnvError,
    detect_cluster_env,
    first_slurm_host,
    slurm_port,
)


def test_first_slurm_host_comes_from_scontrol(tmp_path):
    assert first_slurm_host("gpu[07-08]", path=FAKE_BIN) == "gpu07"
    # scontrol's own error, and its absence, are one ClusterEnvError naming the list
    with pytest.raises(ClusterEnvError, match=r"scontrol show hostnames 'bad\[1' .*"
                                              r"Invalid hostlist: bad\[1"):
        first_slurm_host("bad[1", path=FAKE_BIN)
    with pytest.raises(ClusterEnvError, match=r"SLURM_NODELIST='gpu\[07-08\]' needs SLURM's "
                                              r"scontrol .* set MASTER_ADDR"):
        first_slurm_host("gpu[07-08]", "SLURM_NODELIST", path=str(tmp_path))


def test_nothing_is_detected_outside_launchers():
    assert detect_cluster_env({}) is None
    assert detect_cluster_env({"PATH": "/bin", "HOME": "/root"}) is None
    # a one-task SLURM step (or an sbatch script's own shell) is one ordinary process
    assert detect_cluster_env({**slurm_env(0, 1, 1234)}) is None


def test_torchrun_variables():
    env = {"RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4",
           "MASTER_ADDR": "node01", "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "x"}
    got = detect_cluster_env(env)
    assert got == ClusterEnv("torchrun", 5, 1, 8, 4, "node01", 29500)
    assert (got.num_machines, got.machine_rank, got.init_method) == (2, 1, "env://")


def test_torchrun_with_missing_variables_names_them():
    with pytest.raises(ClusterEnvError, match="LOCAL_WORLD_SIZE, MASTER_ADDR"):
        detect_cluster_env({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0",
                            "MASTER_PORT": "1"})


def test_slurm_variables_of_a_two_machine_step():
    env = {"SLURM_JOB_ID": "123456", "SLURM_PROCID": "6", "SLURM_LOCALID": "2",
           "SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "8",
           "SLURM_STEP_TASKS_PER_NODE": "4(x2)", "SLURM_STEP_NODELIST": "gpu[07-08]",
           "SLURM_JOB_NODELIST": "gpu[01-08]", "PATH": FAKE_BIN}
    got = detect_cluster_env(env)
    # the step's first host, port 15000 + 123456 % 10000
    assert got == ClusterEnv("slurm", 6, 2, 8, 4, "gpu07", 18456)
    assert (got.machine_rank, got.init_method) == (1, "tcp://gpu07:18456")
    assert slurm_port(env) == 18456
    # MASTER_ADDR / MASTER_PORT win when set
    got = detect_cluster_env({**env, "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "23456"})
    assert (got.master_addr, got.master_port) == ("10.0.0.1", 23456)


def test_slurm_layouts_detectron2_cannot_use_are_refused():
    base = {"SLURM_JOB_ID": "1", "SLURM_NTASKS": "8", "SLURM_NODELIST": "n[1-2]",
            "PATH": FAKE_BIN}
    for per_node in ("5,3", "4(x2),3"):
        with pytest.raises(ClusterEnvError, match="different numbers of tasks"):
            detect_cluster_env({**base, "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
                                "SLURM_TASKS_PER_NODE": per_node})
    # cyclic distribution: rank 1 on the second machine as its local rank 0
    with pytest.raises(ClusterEnvError, match="consecutive"):
        detect_cluster_env({**base, "SLURM_PROCID": "1", "SLURM_LOCALID": "0",
                            "SLURM_TASKS_PER_NODE": "4(x2)"})
    with pytest.raises(ClusterEnvError, match="SLURM_PROCID='x' is not an integer"):
        detect_cluster_env({**base, "SLURM_PROCID": "x", "SLURM_LOCALID": "0"})


def test_torchrun_wins_inside_srun_and_the_override():
    torch_env = {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
                 "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    both = {**slurm_env(0, 2, 1234), **torch_env}
    assert detect_cluster_env(both).launcher == "torchrun"
    assert detect_cluster_env({**both, "SOLO_D2_LAUNCHER": "slurm"}).launcher == "slurm"
    assert detect_cluster_env({**both, "SOLO_D2_LAUNCHER": "none"}) is None
    with pytest.raises(ClusterEnvError, match="SOLO_D2_LAUNCHER='mpi'"):
        detect_cluster_env({"SOLO_D2_LAUNCHER": "mpi"})
