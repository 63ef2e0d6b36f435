package dev.wsproxy.internal;

import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendSelector;
import dev.wsproxy.BackendStatus;
import dev.wsproxy.SelectionContext;

/**
 * Picks the candidate with the fewest {@link BackendStatus#activeSessions() active sessions} per unit of weight.
 *
 * <p>The counts are the proxy's own: a session counts from the start of its backend handshake, so a burst of
 * concurrent handshakes sees each other. Ties are broken round-robin: the scan starts one candidate further on each
 * pick, and the first candidate with the lowest load wins. Without that, every pick of a burst that reads the counts
 * before the previous picks took effect would go to the first backend of the list. Lock-free: one atomic increment per
 * pick. One instance per route ({@link #forRoute(String)}) for the rotation.
 */
final class LeastConnectionsSelector implements BackendSelector {

    private final AtomicInteger next = new AtomicInteger();

    LeastConnectionsSelector() {
    }

    @Override
    public @Nullable Backend select(SelectionContext context) {
        List<BackendStatus> candidates = context.candidates();
        int size = candidates.size();
        if (size == 0) {
            return null;
        }
        int start = Math.floorMod(next.getAndIncrement(), size);
        BackendStatus best = candidates.get(start);
        long bestActive = best.activeSessions();
        long bestWeight = best.backend().weight();
        for (int i = 1; i < size; i++) {
            BackendStatus candidate = candidates.get((start + i) % size);
            long active = candidate.activeSessions();
            long weight = candidate.backend().weight();
            // active / weight < bestActive / bestWeight, without division
            if (active * bestWeight < bestActive * weight) {
                best = candidate;
                bestActive = active;
                bestWeight = weight;
            }
        }
        return best.backend();
    }

    @Override
    public BackendSelector forRoute(String route) {
        return new LeastConnectionsSelector();
    }

    @Override
    public String toString() {
        return "leastConnections";
    }
}
