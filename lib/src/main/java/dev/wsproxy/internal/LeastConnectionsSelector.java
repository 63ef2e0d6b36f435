package dev.wsproxy.internal;

import java.util.ArrayList;
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
 * concurrent handshakes sees each other. Ties are broken in turn among the tied candidates: without that, every
 * pick of a burst that reads the counts before the previous picks took effect would go to the first backend of the
 * list. Tied candidates of equal weight go round, lock-free (one atomic increment per pick that has a tie); tied
 * candidates of unequal weights share by weight through a {@link WeightedRoundRobinSelector}, as nginx's
 * {@code least_conn} does, so sessions that end before the next one starts (every count 0 at each pick) still land in
 * proportion to the weights. One instance per route ({@link #forRoute(String)}) for the rotation.
 */
final class LeastConnectionsSelector implements BackendSelector {

    private final AtomicInteger next = new AtomicInteger();
    private final WeightedRoundRobinSelector weightedTies = new WeightedRoundRobinSelector();

    LeastConnectionsSelector() {
    }

    @Override
    public @Nullable Backend select(SelectionContext context) {
        List<BackendStatus> candidates = context.candidates();
        int size = candidates.size();
        if (size == 0) {
            return null;
        }
        BackendStatus best = candidates.get(0);
        long bestActive = best.activeSessions();
        long bestWeight = best.backend().weight();
        int ties = 1;
        boolean unevenTie = false;
        for (int i = 1; i < size; i++) {
            BackendStatus candidate = candidates.get(i);
            long active = candidate.activeSessions();
            long weight = candidate.backend().weight();
            // active / weight against bestActive / bestWeight, without division
            long difference = active * bestWeight - bestActive * weight;
            if (difference < 0) {
                best = candidate;
                bestActive = active;
                bestWeight = weight;
                ties = 1;
                unevenTie = false;
            } else if (difference == 0) {
                ties++;
                unevenTie |= weight != bestWeight;
            }
        }
        if (ties == 1) {
            return best.backend();
        }
        if (unevenTie) {
            List<BackendStatus> tied = tiedWith(candidates, bestActive, bestWeight, ties);
            // The counts may have moved since the scan and left no candidate tied: then the best of the scan stands.
            return tied.isEmpty() ? best.backend() : weightedTies.select(tied, context);
        }
        // The turn goes round the tied candidates only: starting the scan one candidate further on instead handed a
        // tie to whichever tied candidate followed the most loaded ones ([0, 0, 1, 1]: the first won three times in
        // four). The counts may move meanwhile; then the best of the first scan stands.
        int turn = Math.floorMod(next.getAndIncrement(), ties);
        for (BackendStatus candidate : candidates) {
            if (candidate.activeSessions() * bestWeight == bestActive * candidate.backend().weight() && turn-- == 0) {
                return candidate.backend();
            }
        }
        return best.backend();
    }

    private static List<BackendStatus> tiedWith(List<BackendStatus> candidates, long active, long weight, int ties) {
        List<BackendStatus> tied = new ArrayList<>(ties);
        for (BackendStatus candidate : candidates) {
            if (candidate.activeSessions() * weight == active * candidate.backend().weight()) {
                tied.add(candidate);
            }
        }
        return tied;
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
