package dev.wsproxy;

import static java.util.Objects.requireNonNull;

import java.time.Duration;

/**
 * How a proxied session ended.
 *
 * <p>{@code clientCode} is the close code the client sent to the proxy and {@code backendCode} the one the backend
 * sent; {@code 1006} means that peer's connection ended without a close frame, {@code 1005} that its close frame had
 * no code. A peer the proxy sent a close code other than {@code 1000} and {@code 3000}-{@code 4999} (the {@code 1001}
 * of an idle timeout, a stop or a drain) reports {@code 1006}: Jetty ends such a connection once the close frame is
 * written, without waiting for the peer's answer.
 *
 * @param initiator who closed first
 * @param clientCode the code in the client's close frame, 1005 or 1006
 * @param clientReason the reason in the client's close frame, empty when none
 * @param backendCode the code in the backend's close frame, 1005 or 1006
 * @param backendReason the reason in the backend's close frame, empty when none
 * @param duration how long the session was open
 */
public record SessionClose(
        Initiator initiator, int clientCode, String clientReason, int backendCode, String backendReason,
        Duration duration) {

    /**
     * Validates the components.
     *
     * @param initiator who closed first
     * @param clientCode the code in the client's close frame, 1005 or 1006
     * @param clientReason the reason in the client's close frame, empty when none
     * @param backendCode the code in the backend's close frame, 1005 or 1006
     * @param backendReason the reason in the backend's close frame, empty when none
     * @param duration how long the session was open
     */
    public SessionClose {
        requireNonNull(initiator, "initiator");
        requireNonNull(clientReason, "clientReason");
        requireNonNull(backendReason, "backendReason");
        requireNonNull(duration, "duration");
    }

    /** Who started the end of a session. */
    public enum Initiator {
        /** The client sent a close frame or its connection ended. */
        CLIENT,
        /** The backend sent a close frame or its connection ended. */
        BACKEND,
        /**
         * The proxy closed both legs: idle timeout, a dead peer (keep-alive pings), a limit or check of its own
         * (message size, fragments, UTF-8 of a message, message rate), a frame that breaks RFC 6455, which Jetty's
         * parser refuses from either peer (a bad opcode, mask, close code or close reason, an impossible length: the
         * offender's code is then 1006), shutdown or {@link ProxySession#close}.
         */
        PROXY
    }
}
