"""Shrinks a shipped LazyConfig recipe to test size: ResNet-18 at 32 FPN channels, 2 stacked
32-channel convs, small grids, 3 classes, 64-128 px images, batch 2, 3 iterations on the CPU,
from scratch. The head, its other settings, the mapper, optimizer and schedule stay the
recipe's. The test names the data on the command line (dataloader.register_coco_instances,
dataloader.{train,test}.dataset.names) and the output folder (train.output_dir)."""
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone import ResNet


def shrink(cfg):
    """(model, dataloader, optimizer, lr_multiplier, train) of ``cfg``, shrunk."""
    m = cfg.model
    m.backbone.bottom_up.stages = L(ResNet.make_default_stages)(depth=18, norm="FrozenBN")
    m.backbone.out_channels = 32
    m.num_classes = 3
    m.head.feat_channels = 32
    m.head.stacked_convs = 2
    m.head.num_grids = [12, 10, 8, 6, 4]
    if "mask_out_channels" in m.head:  # SOLOv2
        m.head.mask_feat_channels = 32
        m.head.mask_out_channels = 32
    m.scale_ranges = [[1, 32], [16, 64], [32, 128], [64, 256], [128, 512]]
    d = cfg.dataloader
    d.train.mapper.augmentations[0].short_edge_length = (96, 128)
    d.train.mapper.augmentations[0].max_size = 128
    d.test.mapper.augmentations[0].short_edge_length = 128
    d.test.mapper.augmentations[0].max_size = 128
    d.train.total_batch_size = 2
    d.train.num_workers = d.test.num_workers = 0
    t = cfg.train
    t.device = "cpu"
    t.init_checkpoint = ""
    t.max_iter = 3
    t.eval_period = 0
    t.log_period = 1
    t.checkpointer.period = 1000
    return cfg.model, cfg.dataloader, cfg.optimizer, cfg.lr_multiplier, cfg.train
