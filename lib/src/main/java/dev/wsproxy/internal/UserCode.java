package dev.wsproxy.internal;

import org.jspecify.annotations.Nullable;

/**
 * Marks the thread while it runs a user's hook on the proxy's behalf: a {@code ProxyListener}, an
 * {@code OriginValidator}, an {@code Authenticator}'s {@code authenticate}, a {@code BackendSelector} (its
 * {@code select}, with the hash keys it reads, and its {@code onSessionOpened} and {@code onSessionClosed}) or a
 * {@code TimeoutPolicy}. {@code WebSocketProxy.stop} refuses to run under the mark ({@link #running()}): it would wait
 * for itself. Standalone, Jetty's stop of the server waits for its selector threads, and every one of these hooks runs
 * on one (a request is handled on the selector that read it, a backend's answer on the selector that read it), so the
 * stop hung for ever; mounted, the drain waits for the very session whose open or close runs the hook, so the stop
 * hung for the whole drain. An authenticator's later decision completes on a thread of the user's, which no stop waits
 * for: not marked.
 *
 * <p>One thread-local, set and restored around each call: per handshake, per session's open and close and per plain
 * HTTP request, never per frame. It is restored rather than removed, so that a thread's entry is made once, and a hook
 * that runs inside another (a selector's {@code onSessionClosed} under a listener that closed a session) leaves the
 * outer mark in place.
 */
public final class UserCode {

    static final String LISTENER = "a ProxyListener";
    static final String ORIGIN_VALIDATOR = "an OriginValidator";
    static final String AUTHENTICATOR = "an Authenticator";
    static final String SELECTOR = "a BackendSelector";
    static final String TIMEOUT_POLICY = "a TimeoutPolicy";

    /** The hook this thread runs, as a message names it; {@code null}: none. */
    private static final ThreadLocal<@Nullable String> RUNNING = new ThreadLocal<>();

    private UserCode() {
    }

    /** Marks this thread as running {@code hook}; returns the mark to give {@link #exit}. */
    static @Nullable String enter(String hook) {
        String outer = RUNNING.get();
        RUNNING.set(hook);
        return outer;
    }

    /** Ends a hook's call: puts back the mark {@link #enter} returned. */
    static void exit(@Nullable String outer) {
        RUNNING.set(outer);
    }

    /** The hook of a proxy this thread runs now (such as {@code "a ProxyListener"}), or {@code null}. */
    public static @Nullable String running() {
        return RUNNING.get();
    }
}
