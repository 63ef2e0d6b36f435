package dev.wsproxy.internal;

import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendSelector;
import dev.wsproxy.BackendStatus;
import dev.wsproxy.SelectionContext;

/**
 * Sticky by a key taken from the request: rendezvous hashing ({@link Rendezvous}) of the key over the candidates. A
 * request without a key ({@code null} or empty) is handed out round-robin, which is the only state: one instance per
 * route ({@link #forRoute(String)}).
 */
final class ConsistentHashSelector implements BackendSelector {

    private final Function<? super SelectionContext, ? extends @Nullable String> key;
    private final AtomicInteger next = new AtomicInteger();

    ConsistentHashSelector(Function<? super SelectionContext, ? extends @Nullable String> key) {
        this.key = key;
    }

    @Override
    public @Nullable Backend select(SelectionContext context) {
        List<BackendStatus> candidates = context.candidates();
        if (candidates.isEmpty()) {
            return null;
        }
        String value = key.apply(context);
        if (value == null || value.isEmpty()) {
            return candidates.get(Math.floorMod(next.getAndIncrement(), candidates.size())).backend();
        }
        return Rendezvous.pick(candidates, Rendezvous.keyHash(value));
    }

    @Override
    public BackendSelector forRoute(String route) {
        return new ConsistentHashSelector(key);
    }

    @Override
    public String toString() {
        return "consistentHash(" + key + ")";
    }
}
