package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Test;

/**
 * The session limits in all and per address: a refusal for one reason must not make another client see the other
 * limit reached, and every permit goes back once.
 */
class ConnectionLimitsTest {

    @Test
    void anAddressAtItsLimitNeverTakesAnotherClientsSlotInTheTotal() throws Exception {
        // The total was counted before the address: each refused retry of an address at its limit held a slot of the
        // total for a moment, and a client with a free slot then got 503 "session limit reached".
        ConnectionLimits limits = new ConnectionLimits(1, 2);
        assertThat(limits.acquire("10.0.0.1")).isInstanceOf(ConnectionLimits.Permit.class);
        AtomicBoolean done = new AtomicBoolean();
        AtomicInteger otherAnswers = new AtomicInteger();
        List<Thread> retries = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            Thread retry = new Thread(() -> {
                while (!done.get()) {
                    if (limits.acquire("10.0.0.1") != ConnectionLimits.Refusal.PER_ADDRESS) {
                        otherAnswers.incrementAndGet();
                    }
                }
            }, "retrying-address-" + i);
            retry.start();
            retries.add(retry);
        }
        int refused = 0;
        try {
            for (int i = 0; i < 200_000; i++) {
                Object result = limits.acquire("10.0.0.2");
                if (result instanceof ConnectionLimits.Permit permit) {
                    permit.release();
                } else {
                    refused++;
                }
            }
        } finally {
            done.set(true);
            for (Thread retry : retries) {
                retry.join();
            }
        }
        assertThat(refused).as("sessions of the other client refused while a slot of the total was free").isZero();
        assertThat(otherAnswers).as("answers to the address at its limit other than its own limit").hasValue(0);
        assertThat(limits.total()).isOne();
        assertThat(limits.sessions("10.0.0.2")).isZero();
    }

    @Test
    void refusesBeyondEitherLimitAndGivesEachPermitBackOnce() {
        ConnectionLimits limits = new ConnectionLimits(2, 3);
        ConnectionLimits.Permit a1 = (ConnectionLimits.Permit) limits.acquire("a");
        ConnectionLimits.Permit a2 = (ConnectionLimits.Permit) limits.acquire("a");
        assertThat(limits.acquire("a")).isEqualTo(ConnectionLimits.Refusal.PER_ADDRESS);
        ConnectionLimits.Permit b1 = (ConnectionLimits.Permit) limits.acquire("b");
        assertThat(limits.acquire("b")).isEqualTo(ConnectionLimits.Refusal.TOTAL);
        assertThat(limits.sessions("b")).as("a refusal for the total leaves the address's count alone").isOne();

        a1.release();
        a1.release();
        assertThat(limits.total()).isEqualTo(2);
        assertThat(limits.sessions("a")).isOne();
        a2.release();
        b1.release();
        assertThat(limits.total()).isZero();
        assertThat(limits.sessions("a")).isZero();
        assertThat(limits.sessions("b")).isZero();
    }
}
