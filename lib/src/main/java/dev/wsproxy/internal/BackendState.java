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
 */
public final class BackendState implements BackendStatus {

    private volatile Backend backend;
    private final AtomicInteger active = new AtomicInteger();
    private final AtomicLong total = new AtomicLong();
    private final AtomicInteger pending = new AtomicInteger();
    /** {@code proxy.drain(backend)}: until an explicit {@code updateBackends} lists the backend again. */
    private volatile boolean draining;
    /** No longer in the route's list: handshakes already past selection are turned away, as for a drained one. */
    private volatile boolean removed;

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
    private boolean down;

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
        if (draining || removed) {
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

    void draining(boolean draining) {
        this.draining = draining;
    }

    void removed(boolean removed) {
        this.removed = removed;
    }

    private synchronized boolean isDown() {
        return probedDown || passivelyDown(NanoTime.now());
    }

    /** Whether passive health keeps the backend down at {@code now}; guarded by this. */
    private boolean passivelyDown(long now) {
        if (down && NanoTime.elapsed(downUntil, now) >= 0) {
            // The fail timeout has passed: try the backend again (nginx does the same).
            down = false;
            failures = 0;
        }
        return down;
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
        if (maxFails > 0 && failures >= maxFails && !down) {
            down = true;
            downUntil = now + windowNanos;
            return changedFrom(before);
        }
        return null;
    }

    /** Forgets the failures and brings the backend back from passive health's down (not from a health check's). */
    synchronized void forgetFailures() {
        failures = 0;
        down = false;
    }

    synchronized void recordSuccess() {
        if (!down) {
            failures = 0;
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
        return backend + " " + state() + " active=" + active.get() + " pending=" + pending.get();
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
