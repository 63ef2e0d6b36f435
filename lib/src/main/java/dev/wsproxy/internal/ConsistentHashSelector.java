package dev.wsproxy.internal;

import java.util.List;
import java.util.function.Function;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendSelector;
import dev.wsproxy.BackendStatus;
import dev.wsproxy.SelectionContext;

/**
 * Sticky by a key taken from the request: rendezvous hashing ({@link Rendezvous}) of the key over the candidates. A
 * request without a key ({@code null} or empty) is handed out by smooth weighted round robin, as nginx's
 * {@code hash ... consistent} hands it to its weighted round robin: a client's first session often has no key yet (the
 * backend sets the cookie), and plain round robin gave a backend of weight 5 no more of those than one of weight 1.
 * That round robin is the only state: one instance per route ({@link #forRoute(String)}).
 */
final class ConsistentHashSelector implements BackendSelector {

    private final Function<? super SelectionContext, ? extends @Nullable String> key;
    private final WeightedRoundRobinSelector withoutKey = new WeightedRoundRobinSelector();

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
            return withoutKey.select(candidates, context);
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
