package dev.wsproxy.internal;

import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendSelector;
import dev.wsproxy.SelectionContext;

/** Hands out a route's backends in turn. One instance per route: see {@link #forRoute(String)}. */
public final class RoundRobinSelector implements BackendSelector {

    private final AtomicInteger next = new AtomicInteger();

    @Override
    public Backend select(SelectionContext context) {
        List<Backend> backends = context.backends();
        int index = Math.floorMod(next.getAndIncrement(), backends.size());
        return backends.get(index);
    }

    @Override
    public BackendSelector forRoute(String route) {
        return new RoundRobinSelector();
    }

    @Override
    public String toString() {
        return "roundRobin";
    }
}
