package dev.wsproxy.internal;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import org.eclipse.jetty.util.NanoTime;
import org.jspecify.annotations.Nullable;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendStatus;

/**
 * The live state of one backend in one route: active sessions, backend handshakes in flight, passive health (nginx
 * {@code max_fails} / {@code fail_timeout}) and draining. Thread-safe.
 *
 * <h2>Passive health</h2>
 * Up, a backend counts its failed connections within a window; {@code maxFails} of them take it down for the window
 * ({@link #recordFailure}). When the window has passed, it is <em>on trial</em> (half-open), as with nginx, which
 * lets the first pick after {@code fail_timeout} probe the backend: one attempt at a time may go to it
 * ({@link #tryTrial}, whose {@link Trial} every attempt releases when it ends, however it ends), and the others skip it
 * as if it were down ({@link RouteBackends#candidates}); a success ends the trial (up, failures forgotten), and a
 * failure takes it down for another window at once, whatever {@code maxFails}. An attempt that ends otherwise (its
 * client gone, the proxy stopping, a drain, the failover time cut its connect short) says nothing about the backend:
 * its release lets the next attempt try. Without the trial, every handshake arriving until {@code maxFails} new
 * failures were counted went to the backend: for one that drops connection attempts, all those of a whole connect
 * timeout, each client waiting for that timeout before failing over, after every window.
 *
 * <p>On trial, the backend's {@link #state()} is {@code UP} (it takes new sessions, one at a time) and
 * {@link #recentFailures()} is {@code 0} (the window has passed): a trial is not a state of its own, and is reported
 * to no listener; its attempt shows in {@link #pendingHandshakes()}. A trial whose attempt failed takes it down as
 * {@code maxFails} failures do, reported as such ({@code UP -> DOWN}).
 */
public final class BackendState implements BackendStatus {

    private volatile Backend backend;
    private final AtomicInteger active = new AtomicInteger();
    private final AtomicLong total = new AtomicLong();
    private final AtomicInteger pending = new AtomicInteger();
    /**
     * {@code proxy.drain(backend)}, until an explicit {@code updateBackends} lists the backend again: the drain's own
     * mark, a new one for each drain, so that the closes a drain spread over its window run for that drain only, until
     * the next drain or the drain's end ({@link #drainMark}); {@code null} when the backend is not draining.
     */
    private volatile @Nullable Object drain;
    /** No longer in the route's list: handshakes already past selection are turned away, as for a drained one. */
    private volatile boolean removed;
    /**
     * A backend a custom selector picked outside the route's list, with no passive health: marked on the state itself,
     * as its handshake may outlive its place among {@link RouteBackends}'s such states (see
     * {@link RouteBackends#recordFailure}).
     */
    private volatile boolean outsideList;

    // Active health, guarded by this: consecutive probe results.
    private boolean probedDown;
    private int probeStreak;
    private boolean probeStreakGood;

    // Passive health, guarded by this.
    private int failures;
    private long windowStart;
    /** The window of the last failure counted: {@link #recentFailures} reads the count within it, no timer. */
    private long windowNanos;
    private long downUntil;
    /**
     * Written under this lock; volatile so that a backend neither down nor on trial, nearly every backend nearly all
     * the time, is told so without it ({@link #trialInFlight}, {@link #tryTrial}): read {@code down}, then
     * {@code trial}, which {@link #passivelyDown} writes in the other order.
     */
    private volatile boolean down;
    /** Back from {@link #down} after its window: one attempt at a time, until one succeeds or fails. */
    private volatile boolean trial;
    /** The attempt the backend's trial is waiting for, while it is in flight; {@code null} when none is. */
    private @Nullable Trial trialAttempt;

    BackendState(Backend backend) {
        this.backend = backend;
    }

    @Override
    public Backend backend() {
        return backend;
    }

    void backend(Backend backend) {
        this.backend = backend;
    }

    @Override
    public State state() {
        if (drain != null || removed) {
            return State.DRAINING;
        }
        return isDown() ? State.DOWN : State.UP;
    }

    @Override
    public int activeSessions() {
        return active.get();
    }

    @Override
    public long totalSessions() {
        return total.get();
    }

    @Override
    public int pendingHandshakes() {
        return pending.get();
    }

    /**
     * The failures counted since the start of the window, while it lasts; while passive health keeps the backend down,
     * those that took it down. Computed on reading: the count is not reset when nothing happens.
     */
    @Override
    public synchronized int recentFailures() {
        long now = NanoTime.now();
        if (passivelyDown(now)) {
            return failures;
        }
        return failures != 0 && NanoTime.elapsed(windowStart, now) <= windowNanos ? failures : 0;
    }

    /**
     * Marks the backend draining with a new mark, or ends its drain. A backend already draining gets a new mark too: a
     * second {@code proxy.drain} replaces the closes of the first with its own, over its own window. Called under the
     * lock of {@link RouteBackends}.
     */
    void draining(boolean draining) {
        drain = draining ? new Object() : null;
    }

    /**
     * The mark of the backend's latest drain, the same from its {@code proxy.drain} until the next
     * {@code proxy.drain} of the backend, or an {@code updateBackends} listing the backend that ends it; {@code null}
     * when it is not draining. A close a drain scheduled runs only while the mark is still the one it saw: once its
     * drain was ended or drained again, its closes are dropped for good.
     */
    @Nullable Object drainMark() {
        return drain;
    }

    void removed(boolean removed) {
        this.removed = removed;
    }

    /** Whether the state is that of a backend outside the route's list ({@link RouteBackends#stateOf}). */
    boolean outsideList() {
        return outsideList;
    }

    void outsideList(boolean outsideList) {
        this.outsideList = outsideList;
    }

    private synchronized boolean isDown() {
        return probedDown || passivelyDown(NanoTime.now());
    }

    /** Whether passive health keeps the backend down at {@code now}; guarded by this. */
    private boolean passivelyDown(long now) {
        if (down && NanoTime.elapsed(downUntil, now) >= 0) {
            // The fail timeout has passed: the backend is on trial, one attempt at a time (see the class comment).
            // trial before down: a reader without the lock that sees down cleared sees the trial.
            trial = true;
            down = false;
            failures = 0;
        }
        return down;
    }

    /** Ends the trial, if the backend is on one: it is down again, or up for good; guarded by this. */
    private void endTrial() {
        trial = false;
        trialAttempt = null;
    }

    /**
     * Whether the backend is on trial with its attempt in flight: not a candidate until that attempt ends (nor busy,
     * for {@link RouteBackends#anyBusy}: skipped as if down).
     */
    boolean trialInFlight() {
        return (down || trial) && trialInFlightLocked();
    }

    private synchronized boolean trialInFlightLocked() {
        if (!onTrial()) {
            return false;
        }
        Trial attempt = trialAttempt;
        if (attempt != null && NanoTime.elapsed(attempt.lapsesAt, NanoTime.now()) >= 0) {
            // An attempt that has not ended in time (see tryTrial) no longer holds the trial.
            trialAttempt = null;
        }
        return trialAttempt != null;
    }

    /**
     * Starts an attempt on this backend as far as passive health goes: when the backend is on trial, the attempt
     * becomes the trial's, unless another is in flight: then returns {@code null} and holds nothing (the backend is
     * to be skipped, as if down). Otherwise returns {@link Trial#NONE}, which holds nothing. The returned trial is
     * released by {@link Trial#release()} (idempotent) when the attempt ends, however it ends, and after its success
     * or failure was recorded ({@link #recordSuccess}, {@link #recordFailure}, which end the trial), so that no other
     * attempt starts in between. An attempt that has not released it after {@code maxNanos} (a backstop: the callers'
     * own timers end every attempt before) no longer holds the trial, and the next attempt takes it; at most the sum of
     * two durations {@link Durations#stored} caps, so that it adds to the clock without overflow.
     */
    @Nullable Trial tryTrial(long maxNanos) {
        return down || trial ? tryTrialLocked(maxNanos) : Trial.NONE;
    }

    private synchronized @Nullable Trial tryTrialLocked(long maxNanos) {
        if (!onTrial()) {
            return Trial.NONE;
        }
        if (trialInFlightLocked()) {
            return null;
        }
        Trial attempt = new Trial(this, NanoTime.now() + maxNanos);
        trialAttempt = attempt;
        return attempt;
    }

    private synchronized void released(Trial attempt) {
        if (trialAttempt == attempt) {
            trialAttempt = null;
        }
    }

    /**
     * Counts one health probe: {@code unhealthy} failures in a row take the backend down, {@code healthy} successes
     * in a row bring it back. Returns the {@link #state()} the backend had when this probe changed it, else
     * {@code null}: listeners hear of real changes only, from the state the backend really had, not of a verdict that
     * changes under passive health's down or a drain (the backend stays {@code DOWN} or {@code DRAINING}).
     */
    synchronized @Nullable State recordProbe(boolean good, int unhealthy, int healthy) {
        State before = state();
        if (good != probeStreakGood) {
            probeStreakGood = good;
            probeStreak = 0;
        }
        probeStreak++;
        if (probedDown && good && probeStreak >= healthy) {
            probedDown = false;
        } else if (!probedDown && !good && probeStreak >= unhealthy) {
            probedDown = true;
        } else {
            return null;
        }
        return changedFrom(before);
    }

    private @Nullable State changedFrom(State before) {
        return state() == before ? null : before;
    }

    /**
     * Counts a failed connection attempt; {@code maxFails} failures within {@code windowNanos} take the backend down
     * for {@code windowNanos} ({@code 0}: never, the failure is only counted, for {@link #recentFailures}). Returns
     * the {@link #state()} the backend had when this failure changed it (took it down), else {@code null}, as
     * {@link #recordProbe} does: a backend a health check took down, or draining, does not change.
     *
     * <p>On trial, one failure takes the backend down again, whatever {@code maxFails} (unless {@code 0}: passive
     * health does not apply, and the trial ends, the backend up).
     */
    synchronized @Nullable State recordFailure(int maxFails, long windowNanos) {
        State before = state();
        long now = NanoTime.now();
        if (failures == 0 || NanoTime.elapsed(windowStart, now) > windowNanos) {
            failures = 0;
            windowStart = now;
        }
        this.windowNanos = windowNanos;
        failures++;
        boolean onTrial = trial;
        if (maxFails == 0 || down) {
            endTrial();
            return null;
        }
        if (failures >= maxFails || onTrial) {
            endTrial();
            down = true;
            downUntil = now + windowNanos;
            return changedFrom(before);
        }
        return null;
    }

    /**
     * Forgets the failures and brings the backend back from passive health's down (not from a health check's), trial
     * included: up for good.
     */
    synchronized void forgetFailures() {
        failures = 0;
        down = false;
        endTrial();
    }

    /**
     * Counts a connection the backend took (its {@code 101}, its refusal, a plain HTTP request it read): forgets the
     * failures and ends a trial, unless passive health keeps the backend down (nginx, too, forgets them only for an
     * attempt started after the window).
     */
    synchronized void recordSuccess() {
        if (!passivelyDown(NanoTime.now())) {
            failures = 0;
            endTrial();
        }
    }

    /** Counts a session from its handshake to its end; the returned lease releases it exactly once. */
    Lease acquire() {
        active.incrementAndGet();
        return new Lease();
    }

    void opened() {
        total.incrementAndGet();
    }

    /**
     * Counts a backend handshake in flight, unless {@code max} are already: then returns {@code null} and counts
     * nothing. The returned slot releases it exactly once.
     */
    @Nullable HandshakeSlot tryStartHandshake(int max) {
        int current;
        do {
            current = pending.get();
            if (current >= max) {
                return null;
            }
        } while (!pending.compareAndSet(current, current + 1));
        return new HandshakeSlot();
    }

    @Override
    public String toString() {
        return backend + " " + state() + (onTrial() ? " (on trial)" : "") + " active=" + active.get() + " pending="
                + pending.get();
    }

    /** Whether the backend is on trial (see the class comment); for tests and {@link #toString}. */
    synchronized boolean onTrial() {
        return !passivelyDown(NanoTime.now()) && trial;
    }

    /**
     * One attempt's hold on its backend's trial, or none ({@link #NONE}): {@link #release()} is idempotent, and
     * frees the trial for the next attempt unless the attempt's success or failure has ended it already.
     */
    static final class Trial {
        /** The hold of an attempt on a backend that is not on trial: nothing to release. */
        static final Trial NONE = new Trial(null, 0);

        private final @Nullable BackendState state;
        final long lapsesAt;
        private final AtomicBoolean released = new AtomicBoolean();

        private Trial(@Nullable BackendState state, long lapsesAt) {
            this.state = state;
            this.lapsesAt = lapsesAt;
        }

        void release() {
            if (state != null && released.compareAndSet(false, true)) {
                state.released(this);
            }
        }
    }

    /** One active session; {@link #release()} is idempotent. */
    final class Lease {
        private final AtomicBoolean released = new AtomicBoolean();

        BackendState state() {
            return BackendState.this;
        }

        void release() {
            if (released.compareAndSet(false, true)) {
                active.decrementAndGet();
            }
        }
    }

    /** One backend handshake in flight, from its connect to its end; {@link #release()} is idempotent. */
    final class HandshakeSlot {
        private final AtomicBoolean released = new AtomicBoolean();

        void release() {
            if (released.compareAndSet(false, true)) {
                pending.decrementAndGet();
            }
        }
    }
}
