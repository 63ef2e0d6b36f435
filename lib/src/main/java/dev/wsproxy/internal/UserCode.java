package dev.wsproxy.internal;

import java.util.List;

import org.jspecify.annotations.Nullable;

/**
 * Marks the thread while it runs a user's hook on a proxy's behalf: a {@code ProxyListener}, an
 * {@code OriginValidator}, an {@code Authenticator}'s {@code authenticate}, a {@code BackendSelector} (its
 * {@code select}, with the hash keys it reads, and its {@code onSessionOpened} and {@code onSessionClosed}) or a
 * {@code TimeoutPolicy}. {@code WebSocketProxy.stop} refuses to run under the mark of one of its own routes' hooks
 * ({@link #runningIn}): it would wait for itself. Standalone, Jetty's stop of the server waits for its selector
 * threads, and every one of these hooks runs on one (a request is handled on the selector that read it, a backend's
 * answer on the selector that read it), so the stop hung for ever; mounted, the drain waits for the very session whose
 * open or close runs the hook, so the stop hung for the whole drain. An authenticator's later decision completes on a
 * thread of the user's, which no stop waits for: not marked. A hook of another proxy may stop this one: that stop does
 * not wait for it.
 *
 * <p>One thread-local, set and restored around each call: per handshake, per session's open and close and per plain
 * HTTP request, never per frame. The mark is the hook itself, which the stopping proxy looks for among its routes'
 * (and which names it in the message); a call inside another's on the same thread (a listener that closes a session or
 * drains a backend of another proxy) keeps the outer mark behind it, the only case that allocates. It is restored
 * rather than removed, so that a thread's entry is made once.
 */
public final class UserCode {

    /** The thread's hooks running now: the innermost one, or a {@link Nested}; {@code null}: none. */
    private static final ThreadLocal<@Nullable Object> RUNNING = new ThreadLocal<>();

    private UserCode() {
    }

    /** Marks this thread as running {@code hook}; returns the mark to give {@link #exit}. */
    static @Nullable Object enter(Object hook) {
        Object outer = RUNNING.get();
        RUNNING.set(outer == null || outer == hook ? hook : new Nested(hook, outer));
        return outer;
    }

    /** Ends a hook's call: puts back the mark {@link #enter} returned. */
    static void exit(@Nullable Object outer) {
        RUNNING.set(outer);
    }

    /**
     * The hook of one of {@code routes} (those of a proxy about to stop) this thread runs now, as a message names it
     * (such as {@code "a ProxyListener"}); {@code null} when it runs none of theirs.
     */
    public static @Nullable String runningIn(List<Route> routes) {
        for (Object running = RUNNING.get(); running != null;
                running = running instanceof Nested nested ? nested.outer : null) {
            Object hook = running instanceof Nested nested ? nested.hook : running;
            for (Route route : routes) {
                String name = nameIn(route, hook);
                if (name != null) {
                    return name;
                }
            }
        }
        return null;
    }

    private static @Nullable String nameIn(Route route, Object hook) {
        if (hook == route.listener()) {
            return "a ProxyListener";
        } else if (hook == route.originValidator()) {
            return "an OriginValidator";
        } else if (hook == route.selector()) {
            return "a BackendSelector";
        } else if (hook == route.authenticator()) {
            return "an Authenticator";
        } else if (hook == route.timeouts()) {
            return "a TimeoutPolicy";
        }
        return null;
    }

    /** A hook that runs inside another's call on the same thread. */
    private record Nested(Object hook, Object outer) {
    }
}
