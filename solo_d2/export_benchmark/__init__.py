"""Speed and accuracy of exported models in each runtime and precision, side by side with the
PyTorch model they came from, behind tools/benchmark_export.py and tools/evaluate_export.py.

One job per module:

* :mod:`.export_latency`: one exported model vs PyTorch on the same image: latency, agreement;
* :mod:`.deploy_table`: one model in every runtime and precision, timed alternately;
* :mod:`.deploy_profile`: where OpenVINO's time goes, and the convolutions' arithmetic rate;
* :mod:`.deploy_main`: the deployment table of several configs in one run (``--deploy``);
* :mod:`.export_accuracy`: COCO AP of exported models through Detectron2's COCOEvaluator;
* :mod:`.agreement`: how far a deployed model's instances are from PyTorch's.

The machine description, timing and calibration come from :mod:`solo_d2.benchmark`.
"""
