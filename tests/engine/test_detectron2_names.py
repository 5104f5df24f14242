"""The private Detectron2 names solo_d2 still uses, each where no public name does the job:
if Detectron2 moves or changes one, this fails loudly here, naming it, instead of somewhere
deep in a run. Each check exercises the behaviour solo_d2 relies on."""
import importlib
import socket

import numpy as np
import torch
from detectron2.data import detection_utils
from detectron2.engine import hooks
from detectron2.evaluation import panoptic_evaluation
from detectron2.utils import comm, registry
from PIL import Image


def test_periodic_writer_keeps_its_period_in_period():
    # SOLOTrainer sets SOLVER.LOG_PERIOD on the writer hook DefaultTrainer built (a new hook
    # would open the metric writers a second time)
    assert hooks.PeriodicWriter([], period=7)._period == 7


def test_comm_process_groups_solo_d2_resets_and_uses():
    # launch.py resets both after destroying the process group (a second run in one
    # process); utils/comm.py runs its small agreements on the GLOO group
    assert hasattr(comm, "_LOCAL_PROCESS_GROUP")
    assert hasattr(comm._get_global_gloo_group, "cache_clear")


def test_find_free_port_gives_a_bindable_port():
    d2_launch = importlib.import_module("detectron2.engine.launch")  # the module, not launch()
    port = d2_launch._find_free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_convert_target_to_string_names_what_locate_finds():
    # lazy/python_file.py writes LazyConfig targets with it, as LazyConfig.save does
    name = registry._convert_target_to_string(torch.nn.Conv2d)
    assert registry.locate(name) is torch.nn.Conv2d


def test_print_panoptic_results_takes_pq_results():
    res = {k: {"pq": 0.5, "sq": 0.8, "rq": 0.6, "n": 2} for k in ("All", "Things", "Stuff")}
    panoptic_evaluation._print_panoptic_results(res)


def test_apply_exif_orientation_rotates_by_the_tag():
    image = Image.fromarray(np.zeros((2, 3, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # rotated 90 degrees
    image.info["exif"] = exif.tobytes()
    image = Image.open(_saved(image, exif))
    assert detection_utils._apply_exif_orientation(image).size == (2, 3)


def _saved(image, exif):
    import io

    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif)
    buf.seek(0)
    return buf
