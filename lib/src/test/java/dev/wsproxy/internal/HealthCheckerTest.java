package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import org.eclipse.jetty.client.HttpClient;
import org.eclipse.jetty.util.thread.ScheduledExecutorScheduler;
import org.eclipse.jetty.websocket.core.client.WebSocketCoreClient;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendStatus;
import dev.wsproxy.BackendStatus.State;
import dev.wsproxy.HealthCheck;
import dev.wsproxy.ProxyListener;

/**
 * What a health check reports to listeners as its probe results come in (fed here in order, without a network):
 * a change of the backend's state, from the state it really had, and nothing when the probes' verdict changes under a
 * state that passive health or a drain already decides.
 */
class HealthCheckerTest {

    private record Change(State from, State to) {
    }

    private final List<Change> changes = new ArrayList<>();
    private BackendState state;
    private HealthChecker checker;

    @BeforeEach
    void start() {
        HealthCheck check = HealthCheck.webSocket("/health").thresholds(1, 1);
        RouteSettings settings = new RouteSettings("/ws/");
        settings.backends(List.of(Backend.of("ws://10.0.0.1:8080"), Backend.of("ws://10.0.0.2:8080")));
        settings.addListener(new ProxyListener() {
            @Override
            public void onBackendStateChanged(String route, BackendStatus backend, State previous) {
                changes.add(new Change(previous, backend.state()));
            }
        });
        Route route = settings.resolve(RouteSettings.proxyDefaults(65_536));
        state = route.backends().states().get(0);
        // Never started: the probes are fed by hand.
        HttpClient http = new HttpClient();
        checker = new HealthChecker(route, check, new WebSocketCoreClient(http, null), http,
                new ScheduledExecutorScheduler());
    }

    @Test
    void reportsEachChangeOfABackendFromTheStateItHad() {
        checker.record(state, false);
        checker.record(state, true);

        assertThat(changes).containsExactly(new Change(State.UP, State.DOWN), new Change(State.DOWN, State.UP));
    }

    @Test
    void reportsNothingWhileABackendIsDownByPassiveHealth() {
        state.recordFailure(1, Duration.ofMinutes(1).toNanos());

        checker.record(state, false);
        checker.record(state, true);

        assertThat(changes).as("DOWN all along").isEmpty();
    }

    @Test
    void neitherStartsNorEndsPassiveHealthsTrialAndReportsTheTrialsFailureUnderItsDownNot() {
        state.recordFailure(1, 1); // a window of 1 ns, passed at once: on trial
        checker.record(state, true);
        assertThat(state.onTrial()).as("a good probe is no attempt of the trial's").isTrue();

        checker.record(state, false);
        assertThat(state.recordFailure(3, Duration.ofMinutes(1).toNanos())).as("DOWN already").isNull();
        checker.record(state, true);

        assertThat(changes).containsExactly(new Change(State.UP, State.DOWN));
        assertThat(state.state()).as("the trial's failure: down for its window").isEqualTo(State.DOWN);
        assertThat(state.onTrial()).isFalse();
    }

    @Test
    void reportsNothingWhileABackendIsDraining() {
        state.draining(true);

        checker.record(state, false);
        checker.record(state, true);

        assertThat(changes).as("DRAINING all along").isEmpty();
        checker.record(state, false);
        state.draining(false);
        assertThat(state.state()).as("the probes' verdict, kept under the drain").isEqualTo(State.DOWN);
    }
}
