package dev.wsproxy.internal;

import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendSelector;
import dev.wsproxy.BackendStatus;
import dev.wsproxy.SelectionContext;

/**
 * Picks a candidate at random, with a probability proportional to its weight (like nginx's {@code random}). Stateless:
 * one shared instance, {@link ThreadLocalRandom} per thread.
 */
enum RandomSelector implements BackendSelector {
    INSTANCE;

    @Override
    public @Nullable Backend select(SelectionContext context) {
        List<BackendStatus> candidates = context.candidates();
        int size = candidates.size();
        if (size == 0) {
            return null;
        }
        int total = 0;
        for (BackendStatus candidate : candidates) {
            total += candidate.backend().weight();
        }
        int ticket = ThreadLocalRandom.current().nextInt(total);
        for (BackendStatus candidate : candidates) {
            ticket -= candidate.backend().weight();
            if (ticket < 0) {
                return candidate.backend();
            }
        }
        return candidates.get(size - 1).backend();
    }

    @Override
    public String toString() {
        return "random";
    }
}
