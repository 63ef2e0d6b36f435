package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;

import org.junit.jupiter.api.Test;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendStatus;

/** The states of the backends a custom selector picks outside the route's list. */
class RouteBackendsTest {

    @Test
    void forgetsTheIdleStatesOfBackendsOutsideTheListAndKeepsThoseWithSessions() {
        // A selector that builds its backend from request data (a tenant's host): one state per value it ever saw was
        // kept for the proxy's life, so a client sending a new value with each handshake grew the heap without bound.
        RouteBackends backends = new RouteBackends(List.of(Backend.of("ws://10.0.0.1:8080")));
        Backend busy = Backend.of("ws://busy.tenants.internal:8080");
        BackendState busyState = backends.stateOf(busy);
        BackendState.Lease lease = busyState.acquire();

        for (int i = 0; i < 100_000; i++) {
            BackendState state = backends.stateOf(Backend.of("ws://tenant-" + i + ".tenants.internal:8080"));
            BackendState.HandshakeSlot slot = state.tryStartHandshake(1);
            BackendState.Lease session = state.acquire();
            slot.release();
            session.release();
        }

        assertThat(backends.allStates()).as("states kept: the list's and the busy one's, and fewer than 64 idle")
                .hasSizeLessThan(1 + 1 + RouteBackends.MIN_PRUNE_AT)
                .contains(busyState);
        assertThat(backends.stateOf(busy)).as("the state holding a session, still the backend's").isSameAs(busyState);
        assertThat(busyState.activeSessions()).isOne();
        lease.release();
        assertThat(busyState.activeSessions()).isZero();
    }

    @Test
    void keepsEveryStateOutsideTheListWhileEachHoldsAHandshake() {
        RouteBackends backends = new RouteBackends(List.of(Backend.of("ws://10.0.0.1:8080")));
        int count = 3 * RouteBackends.MIN_PRUNE_AT;
        for (int i = 0; i < count; i++) {
            BackendState state = backends.stateOf(Backend.of("ws://tenant-" + i + ".tenants.internal:8080"));
            assertThat(state.tryStartHandshake(1)).isNotNull();
        }
        assertThat(backends.allStates()).hasSize(1 + count);
        for (int i = 0; i < count; i++) {
            assertThat(backends.stateOf(Backend.of("ws://tenant-" + i + ".tenants.internal:8080")).pendingHandshakes())
                    .as("tenant %d's handshake, counted where the next pick looks", i).isOne();
        }
    }

    @Test
    void neverTakesDownABackendOutsideTheListWhoseStateWasDroppedBeforeItsHandshakeCounted() {
        // Pruning drops the idle states outside the list, and the state a handshake was just handed is idle until the
        // handshake counts itself. Dropped, it was no longer found among them: its connect failure was counted as a
        // listed backend's, DOWN (a WARN and onBackendStateChanged) for a backend that has no passive health.
        RouteBackends backends = new RouteBackends(List.of(Backend.of("ws://10.0.0.1:8080"),
                Backend.of("ws://10.0.0.2:8080")));
        for (int i = 0; i < RouteBackends.MIN_PRUNE_AT - 1; i++) {
            backends.stateOf(Backend.of("ws://idle-" + i + ".tenants.internal:8080"));
        }
        BackendState picked = backends.stateOf(Backend.of("ws://picked.tenants.internal:8080"));
        backends.stateOf(Backend.of("ws://next.tenants.internal:8080")); // prunes every idle state, picked's too
        assertThat(backends.allStates()).doesNotContain(picked);

        assertThat(backends.recordFailure(picked, 1, java.util.concurrent.TimeUnit.MINUTES.toNanos(1))).isNull();
        assertThat(picked.state()).isEqualTo(BackendStatus.State.UP);
    }
}
