"""Training: the LiDAR teacher, the IMKD student (any distillation combination), augmentation,
the ablation and the shipped checkpoints. See docs/ablation.md and models/MODEL_CARD.md."""
