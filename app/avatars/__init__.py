"""Avatars: launch, edit and describe the AI twins that keys are bought for."""
