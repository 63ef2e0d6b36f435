package dev.wsproxy.internal;

import java.util.function.Function;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.BackendSelector;
import dev.wsproxy.SelectionContext;

/**
 * Makes the built-in selectors for {@link BackendSelector}'s factories, so that their classes stay package-private.
 * Stateless selectors are shared singletons; stateful ones are fresh instances (and fresh again per route).
 */
public final class Selectors {

    private Selectors() {
    }

    public static BackendSelector roundRobin() {
        return new RoundRobinSelector();
    }

    public static BackendSelector weightedRoundRobin() {
        return new WeightedRoundRobinSelector();
    }

    public static BackendSelector random() {
        return RandomSelector.INSTANCE;
    }

    public static BackendSelector powerOfTwoChoices() {
        return PowerOfTwoChoicesSelector.INSTANCE;
    }

    public static BackendSelector leastConnections() {
        return new LeastConnectionsSelector();
    }

    public static BackendSelector ipHash() {
        return IpHashSelector.INSTANCE;
    }

    public static BackendSelector consistentHash(Function<? super SelectionContext, ? extends @Nullable String> key) {
        return new ConsistentHashSelector(key);
    }
}
