package dev.wsproxy.internal;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendStatus;

/**
 * The backends of one route and their states. The list is replaced atomically ({@link #replace}); states are kept
 * for backends that stay (by URI), so counters and health survive a replacement and sessions already open keep
 * releasing into the right state. A backend removed while it has sessions keeps its state until they end, and gets
 * it back if it returns meanwhile (a DNS answer that left it out once): with a fresh one, it would count none of its
 * open sessions, and least-connections would send it every new one.
 *
 * <p>Two kinds of replacement: an explicit one ({@code updateBackends}, {@link #replace}) is the operator's new list
 * and ends the draining of the backends it names, as documented; a DNS answer ({@link #follow}) only says which
 * addresses exist, so a backend drained with {@code proxy.drain} stays draining through it.
 *
 * <p>Passive health takes a backend down only while the route has more than one ({@link #recordFailure}; a lone
 * backend's failures are counted, never held against it); a replacement that leaves one forgets that one's failures,
 * and ends its trial ({@link BackendState}): a lone backend is never skipped, not even while an attempt tests it.
 */
public final class RouteBackends {

    private volatile List<BackendState> states;
    /**
     * Backends a custom selector picked that are not in the list: one state each, so their counts add up. Kept while
     * they hold sessions or handshakes: a selector that builds its backends from request data (a tenant's host) would
     * otherwise add one state per value it ever saw ({@link #pruneOthers}). One that a replacement lists while it
     * holds some moves to the list ({@link #adoptOther}).
     */
    private final Map<Backend, BackendState> others = new java.util.concurrent.ConcurrentHashMap<>();
    /** The size of {@link #others} at which idle states are dropped; doubles with the live ones, so pruning is rare. */
    private int pruneOthersAt = MIN_PRUNE_AT;
    static final int MIN_PRUNE_AT = 64;
    /** Removed backends whose sessions or handshakes were still open at their removal, by URI (see above). */
    private final Map<java.net.URI, BackendState> retired = new java.util.concurrent.ConcurrentHashMap<>();

    RouteBackends(List<Backend> backends) {
        List<BackendState> initial = new ArrayList<>();
        for (Backend backend : backends) {
            initial.add(new BackendState(backend));
        }
        this.states = List.copyOf(initial);
    }

    List<BackendState> states() {
        return states;
    }

    /** Every state that may hold counts: the list's, the removed backends' and those outside the list. */
    synchronized List<BackendState> allStates() {
        List<BackendState> all = new ArrayList<>(states);
        all.addAll(retired.values());
        all.addAll(others.values());
        return all;
    }

    List<Backend> backends() {
        return backendsOf(states);
    }

    /** The backends of {@code states}, a list {@link #states()} returned. */
    static List<Backend> backendsOf(List<BackendState> states) {
        List<Backend> result = new ArrayList<>(states.size());
        for (BackendState state : states) {
            result.add(state.backend());
        }
        return List.copyOf(result);
    }

    /**
     * The backends of {@code states} (a list {@link #states()} returned) that may take a new session, minus
     * {@code tried}: the up primaries with fewer than {@code maxPendingHandshakes} handshakes in flight and no trial
     * in flight ({@link BackendState#trialInFlight}: a backend back from passive health's down takes one attempt at a
     * time until one succeeds), else such backups.
     */
    static List<BackendStatus> candidates(List<BackendState> states, Set<BackendState> tried,
            int maxPendingHandshakes) {
        List<BackendStatus> primaries = new ArrayList<>();
        List<BackendStatus> backups = new ArrayList<>();
        for (BackendState state : states) {
            if (tried.contains(state) || state.state() != BackendStatus.State.UP
                    || state.pendingHandshakes() >= maxPendingHandshakes || state.trialInFlight()) {
                continue;
            }
            (state.backend().isBackup() ? backups : primaries).add(state);
        }
        return List.copyOf(primaries.isEmpty() ? backups : primaries);
    }

    /** Tells whether a backend that is up has {@code maxPendingHandshakes} in flight: not a candidate for now. */
    boolean anyBusy(int maxPendingHandshakes) {
        for (BackendState state : states) {
            if (state.state() == BackendStatus.State.UP && state.pendingHandshakes() >= maxPendingHandshakes) {
                return true;
            }
        }
        return false;
    }

    /** The state of a backend the selector picked; a backend the route does not know gets a state of its own. */
    BackendState stateOf(Backend backend) {
        return stateOf(backend, List.of());
    }

    /**
     * The state of a backend the selector picked from one of the lists it read ({@code seen}), first in those: one
     * removed since is still that list's state, removed ({@link BackendStatus.State#DRAINING}), which the handshake
     * turns away as it does a drained one. Looked up only in the current list, it was a backend outside the list,
     * given a fresh state ({@code UP}), and the session went to the backend just removed. Then the current list; a
     * backend in neither (one the selector built itself) gets a state of its own, unless it was removed from the list
     * with sessions or handshakes still open: then it is that one's ({@link #reuseRetired}).
     */
    BackendState stateOf(Backend backend, List<List<BackendState>> seen) {
        for (List<BackendState> list : seen) {
            BackendState state = find(list, backend);
            if (state != null) {
                return state;
            }
        }
        BackendState listed = find(states, backend);
        if (listed != null) {
            return listed;
        }
        BackendState other = others.get(backend);
        if (other != null) {
            return other;
        }
        BackendState removed = retired.get(backend.uri());
        if (removed != null && (removed.outsideList() || reuseRetired(removed))) {
            return removed;
        }
        pruneOthers();
        return others.computeIfAbsent(backend, RouteBackends::outsideList);
    }

    /**
     * Makes the state of a removed backend whose sessions or handshakes are still open ({@link #retired}) that of a
     * backend outside the list, for a selector that builds the backend itself: its sessions count with those still
     * open, no longer turned away as removed, without passive health, and still {@linkplain #drain drained} by URI.
     * With a fresh state of its own outside the list, the backend had two, and when {@code updateBackends} listed it
     * again it came back with the removed one alone: its status counted none of the sessions opened meanwhile,
     * least-connections sent it more, and a drain of the removed backend did not stop the selector's new sessions.
     * Returns {@code false} when the state is no longer a removed one with something open: the caller makes one of
     * its own. A selector that picked the backend from a list it read before the removal then finds it too, no longer
     * removed: the backend takes sessions again, as the selector's own picks do.
     */
    private synchronized boolean reuseRetired(BackendState state) {
        if (retired.get(state.backend().uri()) != state
                || (state.activeSessions() == 0 && state.pendingHandshakes() == 0)) {
            return false;
        }
        state.outsideList(true);
        state.removed(false);
        return true;
    }

    private static BackendState outsideList(Backend backend) {
        BackendState state = new BackendState(backend);
        state.outsideList(true);
        return state;
    }

    /** The state of {@code backend} in {@code list}: the same backend, else the same URI; {@code null} if none. */
    private static @Nullable BackendState find(List<BackendState> list, Backend backend) {
        for (BackendState state : list) {
            if (state.backend().equals(backend)) {
                return state;
            }
        }
        for (BackendState state : list) {
            if (state.backend().uri().equals(backend.uri())) {
                return state;
            }
        }
        return null;
    }

    /**
     * Drops the states of backends outside the list that hold no session and no handshake, once there are
     * {@link #pruneOthersAt} of them. A state handed out just before it is dropped still counts and releases its
     * session; only {@link #allStates} no longer sees it, and the backend's next pick gets a fresh one.
     */
    private synchronized void pruneOthers() {
        if (others.size() < pruneOthersAt) {
            return;
        }
        others.values().removeIf(state -> state.activeSessions() == 0 && state.pendingHandshakes() == 0);
        pruneOthersAt = Math.max(MIN_PRUNE_AT, 2 * others.size());
    }

    /**
     * Takes out of {@link #others} the state of a backend outside the list that the list now names ({@code uri}), when
     * it still holds sessions or handshakes: the listed backend goes on with their counts, as a removed backend that
     * comes back does. With a fresh state it counted none of the sessions a custom selector had sent it, and
     * least-connections would send it every new one. Returns {@code null} when there is none; guarded by this.
     */
    private @Nullable BackendState adoptOther(java.net.URI uri) {
        for (Map.Entry<Backend, BackendState> other : others.entrySet()) {
            BackendState state = other.getValue();
            if (other.getKey().uri().equals(uri) && (state.activeSessions() != 0 || state.pendingHandshakes() != 0)
                    && others.remove(other.getKey(), state)) {
                return state;
            }
        }
        return null;
    }

    /**
     * Counts a failed connection against {@code state} for passive health ({@link BackendState#recordFailure}). When
     * the route has one backend, the failure is only counted, for {@link BackendStatus#recentFailures()}: passive
     * health never takes that one down (nginx does the same), but an operator still sees why its clients get
     * {@code 502}. Returns the state the backend had when this failure changed it, else {@code null} (always for a
     * lone backend). Under the lock of {@link #replace}, so that a failure that took a backend down while the route
     * had two is forgotten when it shrinks to one, and none takes it down after.
     *
     * <p>A backend outside the list, one the selector built itself ({@link #others}), has no passive health, as
     * documented: nothing is counted, and it never goes down. Counted, it went down and was reported so, yet the
     * handshake still connected to it (it turns away only a draining backend: the selector chose it, not the
     * candidates), and no listener heard of it coming back. Its state says so itself: looked up in {@link #others},
     * a state pruned between its pick and its handshake's count (idle meanwhile) was taken for a listed one.
     */
    synchronized BackendStatus.@Nullable State recordFailure(BackendState state, int maxFails, long windowNanos) {
        if (state.outsideList()) {
            return null;
        }
        return state.recordFailure(states.size() > 1 ? maxFails : 0, windowNanos);
    }

    /**
     * Marks draining the backend with {@code uri}: the list's, or a removed one whose sessions or handshakes are still
     * open (its state, kept for them, then stays draining if a DNS answer brings it back while they are). Returns
     * whether there was such a backend: one removed with nothing left open is no longer this route's.
     */
    synchronized boolean drain(java.net.URI uri) {
        boolean found = false;
        for (BackendState state : states) {
            if (state.backend().uri().equals(uri)) {
                state.draining(true);
                found = true;
            }
        }
        BackendState removed = retired.get(uri);
        if (removed != null && (removed.activeSessions() != 0 || removed.pendingHandshakes() != 0)) {
            removed.draining(true);
            found = true;
        }
        return found;
    }

    /** Replaces the list with the operator's: backends that stay (or come back) stop draining. */
    void replace(List<Backend> backends) {
        replace(backends, true);
    }

    /** Replaces the list with a DNS answer: backends that stay (or come back) keep draining if they were. */
    void follow(List<Backend> backends) {
        replace(backends, false);
    }

    private synchronized void replace(List<Backend> backends, boolean endDraining) {
        // Only a removed backend whose sessions are still open comes back with its state: one whose sessions all
        // ended starts afresh, as a new backend does (its old health may be long out of date).
        retired.values().removeIf(state -> state.activeSessions() == 0 && state.pendingHandshakes() == 0);
        Map<java.net.URI, BackendState> old = new HashMap<>();
        for (BackendState state : states) {
            old.put(state.backend().uri(), state);
        }
        List<BackendState> next = new ArrayList<>();
        for (Backend backend : backends) {
            BackendState state = old.remove(backend.uri());
            if (state == null) {
                state = retired.remove(backend.uri());
            }
            if (state == null) {
                state = adoptOther(backend.uri());
            }
            if (state == null) {
                state = new BackendState(backend);
            } else {
                state.backend(backend);
                state.removed(false);
                // Listed from now on, passive health applies: to one outside the list (adoptOther), and to a removed
                // one a selector built meanwhile (reuseRetired).
                state.outsideList(false);
                if (endDraining) {
                    state.draining(false);
                }
            }
            next.add(state);
        }
        // Removed backends keep their states through the sessions that still hold a lease on them, and here while
        // they have any.
        for (BackendState removed : old.values()) {
            removed.removed(true);
            if (removed.activeSessions() != 0 || removed.pendingHandshakes() != 0) {
                retired.put(removed.backend().uri(), removed);
            }
        }
        if (next.size() == 1) {
            // A route shrunk to one backend: passive health no longer applies, so it must not keep the backend down
            // (503 until the fail timeout) for failures counted while there were others.
            next.get(0).forgetFailures();
        }
        states = List.copyOf(next);
    }
}
