"""Sharing: model cards and the checkpoint path policy; imports no other stage (model and training use it)."""
