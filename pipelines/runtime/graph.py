"""The pipeline graph: elements, links, validation, topological order and fusion.

Plain Python: no Ray here, so graph mistakes are caught before any actor starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from actors.element import Element, Placement, Sink, Source
from actors.errors import ConfigError
from actors.restart import Restart
from actors.types import MAIN_PAD, Caps, Pads

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


AUTO = "auto"


@dataclass
class Node:
    name: str
    element: Element
    placement: Placement
    replicas: int | str | None = None
    """A pool: this many copies of the element (or "auto"); None for a single host."""
    restart: Restart | bool | None = None
    """Replace the element when its process dies: a Restart, False for never, None for
    the default (on for the non-source elements of a live pipeline)."""

    @property
    def is_pool(self) -> bool:
        return self.replicas is not None


@dataclass
class Link:
    producer: str
    consumer: str
    window: int | None = None
    """Credits on this edge; None picks the default for what the edge carries."""
    fuse: bool | None = None
    """Run both ends in one host; None follows the pipeline's ``fusion`` setting."""
    pad: str = MAIN_PAD
    """The producer's output pad this link takes (``audio_0``...)."""
    into: str | None = None
    """The consumer's input pad; None: named like ``pad``."""

    @property
    def input_pad(self) -> str:
        return self.into or self.pad

    def caps_in(self, caps: dict[str, Any]) -> Caps:
        """What this link carries, of what its producer negotiated (``caps`` by element)."""
        out = caps[self.producer]
        if not isinstance(out, Pads):
            if self.pad != MAIN_PAD:
                raise ConfigError(f"link {self.edge_id}: '{self.producer}' has one output; "
                                  f"link it without pad={self.pad!r}")
            return out
        if self.pad not in out:
            raise ConfigError(f"link {self.edge_id}: '{self.producer}' has no pad "
                              f"{self.pad!r}; its pads are {', '.join(out)}")
        return out[self.pad]

    @property
    def edge_id(self) -> str:
        if self.pad == MAIN_PAD:
            return f"{self.producer}->{self.consumer}"
        return f"{self.producer}.{self.pad}->{self.consumer}"


class Graph:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.links: list[Link] = []
        self._counts: dict[str, int] = {}

    def add(self, element: Element, name: str | None = None,
            placement: Placement | None = None, replicas: int | str | None = None,
            restart: Restart | bool | None = None) -> str:
        if not isinstance(element, Element):
            raise ConfigError(
                f"add(): expected an element (Source, Transform or Sink), got "
                f"{type(element).__name__}"
            )
        if any(n.element is element for n in self.nodes.values()):
            raise ConfigError(f"element '{element.name}' was added twice; create a second one")
        if name is None:
            base = type(element).__name__.lower()
            n = self._counts.get(base, 0)
            while f"{base}{n}" in self.nodes:
                n += 1
            self._counts[base] = n + 1
            name = f"{base}{n}"
        if not NAME_RE.match(name):
            raise ConfigError(f"element name {name!r}: use letters, digits, '_', '.' or '-'")
        if name in self.nodes:
            raise ConfigError(f"an element named '{name}' already exists; pick another name")
        if replicas is not None:
            _check_pool(element, name, replicas)
        _check_restart(element, name, replicas, restart)
        element.name = name
        chosen = placement or element.placement() or Placement()
        self.nodes[name] = Node(name, element, chosen, replicas,
                                Restart() if restart is True else restart)
        return name

    def name_of(self, ref: Element | str) -> str:
        if isinstance(ref, str):
            if ref not in self.nodes:
                raise ConfigError(f"no element named '{ref}' in this pipeline")
            return ref
        for node in self.nodes.values():
            if node.element is ref:
                return node.name
        raise ConfigError(f"element '{ref.name}' is not in this pipeline; add() it first")

    def link(self, a: Element | str, b: Element | str, window: int | None = None,
             fuse: bool | None = None, pad: str = MAIN_PAD, into: str | None = None) -> Link:
        pa, pb = self.name_of(a), self.name_of(b)
        for label, value in (("pad", pad), ("into", into)):
            if value is not None and not (isinstance(value, str) and NAME_RE.match(value)):
                raise ConfigError(f"link {pa} -> {pb}: {label}={value!r} is not a pad name "
                                  "(letters, digits, '_', '.' or '-')")
        if window is not None and (not isinstance(window, int) or window < 1):
            raise ConfigError(
                f"link {pa} -> {pb}: window={window!r} is invalid; a window is the number of "
                "items in flight on the edge and must be an integer >= 1 (or None for the default)"
            )
        if pa == pb:
            raise ConfigError(f"link {pa} -> {pb}: an element cannot feed itself")
        if isinstance(self.nodes[pb].element, Source):
            raise ConfigError(f"link {pa} -> {pb}: '{pb}' is a source and takes no input")
        if isinstance(self.nodes[pa].element, Sink):
            raise ConfigError(f"link {pa} -> {pb}: '{pa}' is a sink and has no output")
        if any(lk.producer == pa and lk.consumer == pb and lk.pad == pad for lk in self.links):
            raise ConfigError(f"link {pa} -> {pb} (pad {pad}) exists already")
        lk = Link(pa, pb, window, fuse, pad, into)
        self.links.append(lk)
        return lk

    def inputs(self, name: str) -> list[Link]:
        return [lk for lk in self.links if lk.consumer == name]

    def outputs(self, name: str) -> list[Link]:
        return [lk for lk in self.links if lk.producer == name]

    def validate(self) -> list[str]:
        """Check the graph; return element names in topological order."""
        if not self.nodes:
            raise ConfigError("the pipeline is empty; add a source and a sink")
        for name, node in self.nodes.items():
            el = node.element
            if not isinstance(el, Source) and not self.inputs(name):
                raise ConfigError(f"'{name}' has no input: link a source or another element to it")
            if not isinstance(el, Sink) and not self.outputs(name):
                raise ConfigError(
                    f"'{name}' has an unlinked output: link it to a sink (or another element)"
                )
        if not any(isinstance(n.element, Source) for n in self.nodes.values()):
            raise ConfigError("the pipeline has no source")
        for name, node in self.nodes.items():
            if node.is_pool:
                ins = self.inputs(name)
                if len(ins) != 1 or self.nodes[ins[0].producer].is_pool \
                        or ins[0].input_pad != MAIN_PAD:
                    raise ConfigError(
                        f"pool '{name}' needs exactly one input from an element that is not "
                        "a pool: its producer dispatches the items and merges the results")
        return self.topo_order()

    def check_pads_linked(self, caps: dict[str, Any]) -> None:
        """An output that nothing takes is a mistake, as GStreamer's not-linked error says."""
        for producer, out in caps.items():
            if not isinstance(out, Pads):
                continue
            linked = {lk.pad for lk in self.outputs(producer)}
            for pad, pad_caps in out.items():
                if pad not in linked:
                    raise ConfigError(
                        f"'{producer}' has an output pad {pad!r} ({pad_caps.describe()}) that "
                        f"nothing is linked to; link it (link(..., pad={pad!r})) or ask the "
                        "element not to produce it")

    def topo_order(self) -> list[str]:
        indegree = {n: len(self.inputs(n)) for n in self.nodes}
        ready = [n for n, d in indegree.items() if d == 0]
        order: list[str] = []
        while ready:
            n = ready.pop(0)
            order.append(n)
            for lk in self.outputs(n):
                indegree[lk.consumer] -= 1
                if indegree[lk.consumer] == 0:
                    ready.append(lk.consumer)
        if len(order) != len(self.nodes):
            stuck = {n for n, d in indegree.items() if d > 0}
            # Peel off what merely hangs below the cycle, so the message names the loop.
            while peel := {n for n in stuck
                           if not any(lk.consumer in stuck for lk in self.outputs(n))}:
                stuck -= peel
            stuck = sorted(stuck)
            raise ConfigError(
                f"the pipeline has a cycle through {', '.join(stuck)}; media pipelines must be "
                "acyclic, so remove one of the links between them"
            )
        return order

    def host_groups(self, fusion: bool) -> list[list[str]]:
        """Chains of elements that share a host, in topological order.

        An edge fuses when it is 1:1 (the producer has one output, the consumer one
        input), both ends are placed alike, and fusion is on for it.
        """
        group_of: dict[str, list[str]] = {}
        groups: list[list[str]] = []
        for name in self.topo_order():
            ins = self.inputs(name)
            if len(ins) == 1 and self._fusable(ins[0], fusion):
                group = group_of[ins[0].producer]
                group.append(name)
            else:
                group = [name]
                groups.append(group)
            group_of[name] = group
        return groups

    def _fusable(self, lk: Link, fusion: bool) -> bool:
        wanted = fusion if lk.fuse is None else lk.fuse
        return (
            wanted
            and lk.pad == MAIN_PAD
            and lk.input_pad == MAIN_PAD
            and not self.nodes[lk.producer].is_pool
            and not self.nodes[lk.consumer].is_pool
            and len(self.outputs(lk.producer)) == 1
            and self.nodes[lk.producer].placement.key() == self.nodes[lk.consumer].placement.key()
            # One host is one process: what it hosts dies, and is replaced, together.
            and self.nodes[lk.producer].restart == self.nodes[lk.consumer].restart
        )

    def restart_of(self, host: str) -> Restart | None:
        """The restart policy of a host (named after the elements it hosts, joined by
        '+'): its elements share one, since fusion keeps policies apart."""
        node = self.nodes.get(host.split("+")[0])
        if node is None or node.is_pool:  # a pool's replicas are replaced by the pool
            return None
        return node.restart if isinstance(node.restart, Restart) else None

    def apply_restart_defaults(self) -> None:
        """Restart on for the non-source elements of a live pipeline, where what was
        missed cannot be had again; off elsewhere (a file can be run again)."""
        live = any(getattr(n.element, "live", False) for n in self.nodes.values()
                   if isinstance(n.element, Source))
        for node in self.nodes.values():
            if node.restart is None:
                node.restart = (Restart() if live and not node.is_pool
                                and not isinstance(node.element, Source) else False)

    def pools(self) -> list[str]:
        return [n for n, node in self.nodes.items() if node.is_pool]

    def describe(self) -> dict[str, Any]:
        return {
            "elements": {n: type(node.element).__name__ for n, node in self.nodes.items()},
            "links": [lk.edge_id for lk in self.links],
        }


def _check_restart(element: Element, name: str, replicas: int | str | None,
                   restart: Restart | bool | None) -> None:
    if restart is None or restart is False:
        return
    if restart is not True and not isinstance(restart, Restart):
        raise ConfigError(f"'{name}': restart={restart!r} is invalid; give Restart(...), "
                          "True for the default policy, or False")
    if isinstance(element, Source):
        raise ConfigError(f"'{name}': a source cannot be restarted (what it was reading is "
                          "gone with it); restart the elements after it")
    if replicas is not None:
        raise ConfigError(f"'{name}': a pool replaces its own replicas; drop restart=")


def _check_pool(element: Element, name: str, replicas: int | str) -> None:
    if isinstance(element, (Source, Sink)):
        raise ConfigError(f"'{name}': only a transform can run as a pool of replicas; a "
                          "source or a sink has one place where its data is")
    if replicas == AUTO:
        return
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise ConfigError(f"'{name}': replicas={replicas!r} is invalid; give a number of "
                          f"copies >= 1, or \"{AUTO}\" for one per CPU of the nodes that fit")
