"""SOLOv2_Light_R50_3x.py shrunk to test size (tiny.py)."""
from solo_d2.model_zoo import get_config

from .tiny import shrink

model, dataloader, optimizer, lr_multiplier, train = shrink(get_config("SOLOv2_Light_R50_3x.py"))
