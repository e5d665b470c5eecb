"""Corpus: find the videos of a SOURCE and give each an identity."""

from pipeline.corpus.listing import VIDEO_EXTENSIONS, list_corpus
from pipeline.corpus.video_ref import VideoRef

__all__ = ["VIDEO_EXTENSIONS", "VideoRef", "list_corpus"]
