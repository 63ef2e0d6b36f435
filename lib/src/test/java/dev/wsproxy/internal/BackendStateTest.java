package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.List;

import org.junit.jupiter.api.Test;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendStatus.State;

/**
 * Passive health's trial, without a network: a backend whose window has passed takes one attempt at a time, until one
 * succeeds (up) or fails (down again, whatever {@code maxFails}); every other end leaves the trial to the next attempt.
 * The backend is taken down with a window of 1 ns, which has passed when the next line runs.
 */
class BackendStateTest {

    private static final long PASSED = 1;
    private static final long MINUTE = Duration.ofMinutes(1).toNanos();

    private final BackendState state = new BackendState(Backend.of("ws://10.0.0.1:8080"));

    private void onTrial() {
        state.recordFailure(1, PASSED);
        assertThat(state.onTrial()).isTrue();
    }

    @Test
    void givesTheTrialToOneAttemptAtATimeAndToTheNextOnceItEndsWithoutAVerdict() {
        onTrial();
        assertThat(state.state()).as("takes new sessions, one at a time").isEqualTo(State.UP);
        assertThat(state.trialInFlight()).isFalse();

        BackendState.Trial trial = state.tryTrial(MINUTE);

        assertThat(trial).isNotNull().isNotSameAs(BackendState.Trial.NONE);
        assertThat(state.trialInFlight()).isTrue();
        assertThat(state.tryTrial(MINUTE)).as("another attempt, while the trial's is in flight").isNull();
        trial.release(); // the client left, the proxy stopped, a drain: nothing about the backend
        assertThat(state.trialInFlight()).isFalse();
        BackendState.Trial next = state.tryTrial(MINUTE);
        assertThat(next).isNotNull().isNotSameAs(BackendState.Trial.NONE);
        trial.release();
        assertThat(state.trialInFlight()).as("an earlier hold released again frees nothing").isTrue();
    }

    @Test
    void takesTheBackendDownAgainAtTheTrialsFailureWhateverMaxFails() {
        onTrial();
        BackendState.Trial trial = state.tryTrial(MINUTE);

        assertThat(state.recordFailure(3, MINUTE)).as("reported as a change").isEqualTo(State.UP);
        trial.release();

        assertThat(state.state()).isEqualTo(State.DOWN);
        assertThat(state.recentFailures()).isOne();
        assertThat(state.onTrial()).isFalse();
        assertThat(state.tryTrial(MINUTE)).as("down: no trial").isSameAs(BackendState.Trial.NONE);
    }

    @Test
    void bringsTheBackendUpForGoodAtTheTrialsSuccess() {
        onTrial();
        BackendState.Trial trial = state.tryTrial(MINUTE);

        state.recordSuccess();
        trial.release();

        assertThat(state.onTrial()).isFalse();
        assertThat(state.tryTrial(MINUTE)).isSameAs(BackendState.Trial.NONE);
        assertThat(state.recordFailure(2, MINUTE)).as("1 failure of 2 again").isNull();
        assertThat(state.state()).isEqualTo(State.UP);
    }

    @Test
    void letsTheNextAttemptTakeATrialWhoseAttemptNeverEnded() {
        onTrial();
        assertThat(state.tryTrial(1)).isNotNull();

        assertThat(state.trialInFlight()).as("its hold lapsed").isFalse();
        assertThat(state.tryTrial(MINUTE)).isNotNull().isNotSameAs(BackendState.Trial.NONE);
    }

    @Test
    void endsTheTrialOfTheBackendARouteIsLeftWith() {
        RouteBackends backends = new RouteBackends(List.of(Backend.of("ws://10.0.0.1:8080"),
                Backend.of("ws://10.0.0.2:8080")));
        BackendState first = backends.states().get(0);
        backends.recordFailure(first, 1, PASSED);
        assertThat(first.onTrial()).isTrue();
        assertThat(first.tryTrial(MINUTE)).isNotNull();
        assertThat(RouteBackends.candidates(backends.states(), java.util.Set.of(), 10))
                .as("skipped while its trial is in flight").hasSize(1);

        backends.replace(List.of(first.backend()));

        assertThat(first.onTrial()).as("a lone backend is never skipped").isFalse();
        assertThat(RouteBackends.candidates(backends.states(), java.util.Set.of(), 10)).containsExactly(first);
        assertThat(backends.recordFailure(first, 1, MINUTE)).isNull();
        assertThat(first.state()).isEqualTo(State.UP);
    }
}
