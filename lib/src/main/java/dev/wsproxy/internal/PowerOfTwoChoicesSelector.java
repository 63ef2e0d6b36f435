package dev.wsproxy.internal;

import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendSelector;
import dev.wsproxy.BackendStatus;
import dev.wsproxy.SelectionContext;

/**
 * The power of two random choices (nginx's {@code random two least_conn}): draws two distinct candidates at random,
 * each with a probability proportional to its weight as nginx draws them, and takes the one with fewer active sessions
 * per unit of weight; on a tie, the first drawn (itself random).
 *
 * <p>Why: it nearly matches least-connections on balance, yet concurrent picks that read the same counts do not all
 * go to the same backend, and no backend is ever scanned as "the" minimum. The draws follow the weights because the
 * comparison alone cannot: a backend wins only the draws it is in, so drawn uniformly, a backend of weight 10 among ten
 * of weight 1 was in 2 draws of 11 and held 18 % of the sessions instead of half. Stateless: one shared instance,
 * {@link ThreadLocalRandom} per thread.
 */
enum PowerOfTwoChoicesSelector implements BackendSelector {
    INSTANCE;

    @Override
    public @Nullable Backend select(SelectionContext context) {
        List<BackendStatus> candidates = context.candidates();
        int size = candidates.size();
        if (size == 0) {
            return null;
        }
        if (size == 1) {
            return candidates.get(0).backend();
        }
        int total = 0;
        for (int k = 0; k < size; k++) {
            total += candidates.get(k).backend().weight();
        }
        ThreadLocalRandom random = ThreadLocalRandom.current();
        int i = drawn(candidates, random.nextInt(total), -1);
        BackendStatus first = candidates.get(i);
        // The second among the others, in proportion to their weights: as nginx's draws again until it has another.
        // A weight updateBackends changed since the sum was taken may leave no room: then the first other one.
        int others = total - first.backend().weight();
        BackendStatus second = candidates.get(drawn(candidates, others > 0 ? random.nextInt(others) : 0, i));
        long firstLoad = (long) first.activeSessions() * second.backend().weight();
        long secondLoad = (long) second.activeSessions() * first.backend().weight();
        return secondLoad < firstLoad ? second.backend() : first.backend();
    }

    /**
     * The index of the candidate whose share of the weights, laid end to end in list order without the one at
     * {@code skip}, holds {@code ticket}.
     */
    private static int drawn(List<BackendStatus> candidates, int ticket, int skip) {
        int last = -1;
        for (int k = 0; k < candidates.size(); k++) {
            if (k == skip) {
                continue;
            }
            last = k;
            ticket -= candidates.get(k).backend().weight();
            if (ticket < 0) {
                return k;
            }
        }
        return last;
    }

    @Override
    public String toString() {
        return "powerOfTwoChoices";
    }
}
