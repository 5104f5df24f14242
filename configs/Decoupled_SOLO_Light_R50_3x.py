"""mmdet 3.3.0 decoupled-solo-light_r50_fpn_3x_coco (32.9 mask AP): 4 stacked convs, smaller
scale ranges, 852x512 input (the LazyConfig twin of Decoupled_SOLO_Light_R50_3x.yaml)."""
from solo_d2.modeling import DecoupledSOLOLightHead

from .SOLO_R50_3x import dataloader, lr_multiplier, model, optimizer, train

model.head._target_ = DecoupledSOLOLightHead
model.head.stacked_convs = 4
model.scale_ranges = [[1, 64], [32, 128], [64, 256], [128, 512], [256, 2048]]
train_resize, test_resize = (
    dataloader.train.mapper.augmentations[0],
    dataloader.test.mapper.augmentations[0],
)
train_resize.short_edge_length = (512, 480, 448, 416, 384, 352)
train_resize.max_size = 852
test_resize.short_edge_length = 512
test_resize.max_size = 852
del train_resize, test_resize
train.output_dir = "output/Decoupled_SOLO_Light_R50_3x"
