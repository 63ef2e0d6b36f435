package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BiFunction;

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
        ClientKey atLimit = key("10.0.0.1");
        ClientKey other = key("10.0.0.2");
        assertThat(limits.acquire(atLimit)).isInstanceOf(ConnectionLimits.Permit.class);
        AtomicBoolean done = new AtomicBoolean();
        AtomicInteger otherAnswers = new AtomicInteger();
        List<Thread> retries = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            Thread retry = new Thread(() -> {
                while (!done.get()) {
                    if (limits.acquire(atLimit) != ConnectionLimits.Refusal.PER_ADDRESS) {
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
                Object result = limits.acquire(other);
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
        assertThat(limits.sessions(other)).isZero();
    }

    @Test
    void refusesAHandshakeOfAnAddressBelowItsLimitFor503WhileAnotherOfItsHandshakesFindsTheTotalFull() {
        // The address's slot was counted before the total's and given back when the total refused: a second
        // handshake of the address in between found the address at its limit, and its client got 429 "too many
        // sessions" for a refusal of the total (503). The second handshake comes here as soon as the first has
        // been through the address's entry.
        AtomicReference<ConnectionLimits> limits = new AtomicReference<>();
        AtomicReference<Object> second = new AtomicReference<>();
        AtomicBoolean secondComes = new AtomicBoolean();
        ConcurrentHashMap<ClientKey, AtomicInteger> perAddress = new ConcurrentHashMap<>() {
            @Override
            public AtomicInteger compute(ClientKey key,
                    BiFunction<? super ClientKey, ? super AtomicInteger, ? extends AtomicInteger> count) {
                AtomicInteger result = super.compute(key, count);
                if (secondComes.getAndSet(false)) {
                    second.set(limits.get().acquire(key));
                }
                return result;
            }
        };
        limits.set(new ConnectionLimits(2, 2, perAddress));
        ClientKey address = key("192.0.2.1");
        assertThat(limits.get().acquire(address)).isInstanceOf(ConnectionLimits.Permit.class);
        assertThat(limits.get().acquire(key("192.0.2.2"))).isInstanceOf(ConnectionLimits.Permit.class);

        secondComes.set(true);
        assertThat(limits.get().acquire(address)).isEqualTo(ConnectionLimits.Refusal.TOTAL);
        assertThat(second.get()).as("the second handshake: a session of two, the total full")
                .isEqualTo(ConnectionLimits.Refusal.TOTAL);
        assertThat(limits.get().sessions(address)).isOne();
        assertThat(limits.get().total()).isEqualTo(2);
    }

    @Test
    void refusesBeyondEitherLimitAndGivesEachPermitBackOnce() {
        ConnectionLimits limits = new ConnectionLimits(2, 3);
        ClientKey a = key("192.0.2.1");
        ClientKey b = key("192.0.2.2");
        ConnectionLimits.Permit a1 = (ConnectionLimits.Permit) limits.acquire(a);
        ConnectionLimits.Permit a2 = (ConnectionLimits.Permit) limits.acquire(a);
        assertThat(limits.acquire(a)).isEqualTo(ConnectionLimits.Refusal.PER_ADDRESS);
        ConnectionLimits.Permit b1 = (ConnectionLimits.Permit) limits.acquire(b);
        assertThat(limits.acquire(b)).isEqualTo(ConnectionLimits.Refusal.TOTAL);
        assertThat(limits.sessions(b)).as("a refusal for the total leaves the address's count alone").isOne();

        a1.release();
        a1.release();
        assertThat(limits.total()).isEqualTo(2);
        assertThat(limits.sessions(a)).isOne();
        a2.release();
        b1.release();
        assertThat(limits.total()).isZero();
        assertThat(limits.sessions(a)).isZero();
        assertThat(limits.sessions(b)).isZero();
    }

    @Test
    void countsTheAddressesOfOneIpv6BlockTogetherAndKeepsNoEntryOnceTheirPermitsAreBack() {
        ConnectionLimits limits = new ConnectionLimits(2, 10);
        ConnectionLimits.Permit first = (ConnectionLimits.Permit) limits.acquire(key("2001:db8::1"));
        ConnectionLimits.Permit second = (ConnectionLimits.Permit) limits.acquire(key("2001:db8::2"));
        assertThat(limits.acquire(key("2001:db8::ffff"))).as("a third address of the /64")
                .isEqualTo(ConnectionLimits.Refusal.PER_ADDRESS);
        ConnectionLimits.Permit other = (ConnectionLimits.Permit) limits.acquire(key("2001:db8:0:1::1"));
        assertThat(limits.sessions(key("2001:db8::7"))).as("the count of the /64").isEqualTo(2);
        assertThat(limits.addresses()).isEqualTo(2);

        first.release();
        first.release();
        assertThat(limits.sessions(key("2001:db8::1"))).isOne();
        second.release();
        other.release();
        second.release();
        assertThat(limits.sessions(key("2001:db8::1"))).isZero();
        assertThat(limits.addresses()).as("entries left").isZero();
        assertThat(limits.total()).isZero();
    }

    /** The key of {@code address}, an IPv6 one by its /64 (the default). */
    private static ClientKey key(String address) {
        return ClientKey.of(Cidr.literal(address), address, 64);
    }
}
