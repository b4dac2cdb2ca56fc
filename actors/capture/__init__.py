"""Live capture sources."""

from actors.capture.screen_capture import ScreenCaptureSettings, ScreenCaptureSource

__all__ = ["ScreenCaptureSettings", "ScreenCaptureSource"]
