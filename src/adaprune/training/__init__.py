from adaprune.training.loop import TrainConfig, batch_indices, fit, predict_logits, seeded_model

__all__ = ["TrainConfig", "batch_indices", "fit", "predict_logits", "seeded_model"]
