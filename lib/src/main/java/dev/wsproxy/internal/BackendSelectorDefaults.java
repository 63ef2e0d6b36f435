package dev.wsproxy.internal;

import dev.wsproxy.BackendSelector;

/** The default selector; every route gets its own instance through {@link BackendSelector#forRoute(String)}. */
final class BackendSelectorDefaults {

    static final BackendSelector ROUND_ROBIN = new RoundRobinSelector();

    private BackendSelectorDefaults() {
    }
}
