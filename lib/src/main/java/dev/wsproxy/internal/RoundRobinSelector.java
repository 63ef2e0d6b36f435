package dev.wsproxy.internal;

import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendSelector;
import dev.wsproxy.BackendStatus;
import dev.wsproxy.SelectionContext;

/** Hands out a route's backends in turn. One instance per route: see {@link #forRoute(String)}. */
final class RoundRobinSelector implements BackendSelector {

    private final AtomicInteger next = new AtomicInteger();

    @Override
    public @Nullable Backend select(SelectionContext context) {
        List<BackendStatus> candidates = context.candidates();
        if (candidates.isEmpty()) {
            return null;
        }
        int index = Math.floorMod(next.getAndIncrement(), candidates.size());
        return candidates.get(index).backend();
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
