"""UrbanEye: video capture of city-management violations."""

__version__ = "0.1.0"
