package dev.wsproxy.internal;

import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendSelector;
import dev.wsproxy.BackendStatus;
import dev.wsproxy.SelectionContext;

/**
 * nginx's smooth weighted round robin: on each pick every candidate's current weight grows by its weight, the
 * highest wins (the first in configuration order on a tie) and loses the total of the weights. Weights 5, 1, 1 give
 * {@code a a b a c a a}: the heavy backend's turns are spread through the cycle instead of coming in a row, so a burst
 * of new sessions does not land on it all at once.
 *
 * <p>One instance per route ({@link #forRoute(String)}). The arithmetic runs under this object's lock, a few
 * additions per candidate; {@link SelectionContext#candidates()} is read before taking it. Current weights are kept
 * per {@link Backend} (URI, weight and backup flag), so a backend that is down for a while keeps its place, and one
 * whose weight changes starts afresh. Entries of backends no longer configured are dropped when a new backend shows
 * up, so the map never outgrows the route's list.
 */
final class WeightedRoundRobinSelector implements BackendSelector {

    /** Current weights; guarded by {@code this}. */
    private final Map<Backend, long[]> current = new HashMap<>();

    WeightedRoundRobinSelector() {
    }

    @Override
    public @Nullable Backend select(SelectionContext context) {
        return select(context.candidates(), context);
    }

    /** Picks among {@code candidates}, which {@code context} gave; for {@link ConsistentHashSelector}'s keyless picks. */
    @Nullable Backend select(List<BackendStatus> candidates, SelectionContext context) {
        if (candidates.isEmpty()) {
            return null;
        }
        synchronized (this) {
            boolean added = false;
            long total = 0;
            long[] best = null;
            Backend picked = null;
            for (BackendStatus candidate : candidates) {
                Backend backend = candidate.backend();
                long[] weight = current.get(backend);
                if (weight == null) {
                    weight = new long[1];
                    current.put(backend, weight);
                    added = true;
                }
                weight[0] += backend.weight();
                total += backend.weight();
                if (best == null || weight[0] > best[0]) {
                    best = weight;
                    picked = backend;
                }
            }
            best[0] -= total;
            if (added) {
                current.keySet().retainAll(new HashSet<>(context.backends()));
            }
            return picked;
        }
    }

    @Override
    public BackendSelector forRoute(String route) {
        return new WeightedRoundRobinSelector();
    }

    @Override
    public String toString() {
        return "weightedRoundRobin";
    }
}
