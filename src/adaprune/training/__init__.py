from adaprune.training.loop import TrainConfig, batch_indices, fit, per_sample_losses, predict_logits, seeded_model

__all__ = ["TrainConfig", "batch_indices", "fit", "per_sample_losses", "predict_logits", "seeded_model"]
