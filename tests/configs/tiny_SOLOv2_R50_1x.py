"""SOLOv2_R50_1x.py shrunk to test size (tiny.py)."""
from solo_d2.model_zoo import get_config

from .tiny import shrink

model, dataloader, optimizer, lr_multiplier, train = shrink(get_config("SOLOv2_R50_1x.py"))
