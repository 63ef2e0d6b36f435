package dev.wsproxy.internal;

import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendSelector;
import dev.wsproxy.BackendStatus;
import dev.wsproxy.SelectionContext;

/**
 * The power of two random choices (nginx's {@code random two least_conn}): draws two distinct candidates at random and
 * takes the one with fewer active sessions per unit of weight; on a tie, the first drawn (itself random).
 *
 * <p>Why: it nearly matches least-connections on balance, yet concurrent picks that read the same counts do not all
 * go to the same backend, and no backend is ever scanned as "the" minimum. Stateless: one shared instance,
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
        ThreadLocalRandom random = ThreadLocalRandom.current();
        int i = random.nextInt(size);
        int j = random.nextInt(size - 1);
        if (j >= i) {
            j++;
        }
        BackendStatus first = candidates.get(i);
        BackendStatus second = candidates.get(j);
        long firstLoad = (long) first.activeSessions() * second.backend().weight();
        long secondLoad = (long) second.activeSessions() * first.backend().weight();
        return secondLoad < firstLoad ? second.backend() : first.backend();
    }

    @Override
    public String toString() {
        return "powerOfTwoChoices";
    }
}
