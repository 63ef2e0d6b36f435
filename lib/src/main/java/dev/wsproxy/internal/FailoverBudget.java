package dev.wsproxy.internal;

import java.util.concurrent.TimeUnit;

import org.eclipse.jetty.util.NanoTime;

/**
 * A route's failover budget for one request, an upgrade ({@link Handshake}) or a plain HTTP request
 * ({@link ForwardedRequest}): the attempts made and the time left (nginx's {@code proxy_next_upstream_tries} and
 * {@code proxy_next_upstream_timeout}). Every backend a selector picks is an attempt, whether it is connected to or
 * turned away (draining, removed, at its cap of handshakes in flight), so both paths stop after the same picks.
 * Attempts never overlap, but a failed one is counted on the thread that saw it fail, hence the volatile count.
 */
final class FailoverBudget {

    private final int maxAttempts;
    private final long deadline;
    private volatile int attempts;

    /** Starts the budget now: {@code failover}'s time runs from here. */
    FailoverBudget(Route.Failover failover) {
        this.maxAttempts = failover.maxAttempts();
        this.deadline = NanoTime.now() + failover.maxTime().toNanos();
    }

    /** Counts an attempt on a picked backend; returns its number, from 1. */
    int attempt() {
        int attempt = attempts + 1;
        attempts = attempt;
        return attempt;
    }

    /** The attempts made so far. */
    int attempts() {
        return attempts;
    }

    /** Whether another attempt is allowed: attempts and time are both left. */
    boolean allowsAnother() {
        return attempts < maxAttempts && NanoTime.now() - deadline < 0;
    }

    /** The whole milliseconds left of the failover time; zero or less once it has run out. */
    long remainingMillis() {
        return TimeUnit.NANOSECONDS.toMillis(deadline - NanoTime.now());
    }
}
