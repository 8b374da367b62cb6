"""PNG renders of keyframes: six cameras with projected boxes and a BEV panel (numpy + PIL)."""

from imkd_ros.render.frame import RenderOptions, box_corners, render_frame, render_frame_image

__all__ = ["RenderOptions", "box_corners", "render_frame", "render_frame_image"]
