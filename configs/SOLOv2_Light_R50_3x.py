"""mmdet 3.3.0 solov2-light_r50_fpn_ms-3x_coco (33.7 mask AP): 2 stacked convs of 256
channels, 128-channel mask features, smaller scale ranges, 768x(352..512) multi-scale
training, 768x448 test (the LazyConfig twin of SOLOv2_Light_R50_3x.yaml)."""
from .SOLOv2_R50_3x import dataloader, lr_multiplier, model, optimizer, train

model.head.feat_channels = 256
model.head.stacked_convs = 2
model.head.mask_out_channels = 128
model.scale_ranges = [[1, 56], [28, 112], [56, 224], [112, 448], [224, 896]]
train_resize, test_resize = (
    dataloader.train.mapper.augmentations[0],
    dataloader.test.mapper.augmentations[0],
)
train_resize.short_edge_length = (512, 480, 448, 416, 384, 352)
train_resize.max_size = 768
test_resize.short_edge_length = 448
test_resize.max_size = 768
del train_resize, test_resize
train.output_dir = "output/SOLOv2_Light_R50_3x"
