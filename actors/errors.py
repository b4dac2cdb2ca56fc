"""The Parallax error hierarchy.

Two families, kept apart on purpose (as Ray Data keeps user errors apart from
system errors):

* ``ConfigError`` and ``MediaError``: the user asked for something that cannot
  work (a bad option, an impossible link, a file that is not media). The CLI
  maps these to exit code 2 with one line on stderr.
* ``PipelineError``: something failed while the pipeline ran (an element
  raised, an actor died). The CLI maps these to exit code 1.

End of stream is a signal (``actors.types.EOS``), never an exception.
"""

from __future__ import annotations


class ParallaxError(Exception):
    """Base class of every error Parallax raises on purpose."""


class ConfigError(ParallaxError, ValueError):
    """A setting, option or pipeline description that cannot work."""


class CapsError(ConfigError):
    """Two linked elements cannot agree on what the edge carries."""


class PlacementError(ConfigError):
    """No node in the cluster can host an element as requested."""


class BudgetError(ConfigError):
    """The credit windows would not fit in the object store."""


class MediaError(ParallaxError, ValueError):
    """Input media that cannot be read: missing, empty, corrupt or unsupported."""


class PipelineError(ParallaxError, RuntimeError):
    """A failure while the pipeline ran, attributed to one element.

    ``element`` names the element that failed first; ``cause`` is a short
    description of why, e.g. ``"ValueError: bad frame"`` or ``"actor died"``.
    """

    def __init__(self, element: str, cause: str, details: str = "") -> None:
        self.element = element
        self.cause = cause
        self.details = details
        super().__init__(f"element '{element}' failed: {cause}")


class FlowError(ParallaxError, RuntimeError):
    """Raised inside a host when a flow policy gives up (too many drops in a row)."""
