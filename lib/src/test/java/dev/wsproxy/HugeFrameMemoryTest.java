package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.atomic.AtomicBoolean;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The frame of CVE-2026-19204, an unknown opcode announcing 2 GiB of payload and sending none, on either leg of a
 * proxy that runs in a forked JVM with a 64 MiB heap and 64 MiB of direct memory: the proxy must refuse it on its
 * header, not allocate for it. In the test JVM's own multi-GiB heap, an allocation of the announced size could succeed
 * and hide the fault; here it ends the process (matrix F3, both legs).
 *
 * <p>The row asks for less than 1 MiB of heap growth, which the small heap alone would not show: an allocation of 32
 * MiB fits in it. So each test measures the attack against a baseline taken just before it, after a first session of
 * the same shape whose frame is harmless (the same opcode, no payload announced), which loads the classes and fills
 * the pools the proxy keeps for good. From the baseline to the close of both legs, the proxy's threads must allocate
 * less than 1 MiB (garbage included), and its heap after a full GC must grow by less than 1 MiB. From a client, the
 * baseline is taken once its session is open, so that the frame and the closes are measured; a backend's frame comes
 * right after its {@code 101}, so there the whole session is. Measured here: 6 to 51 KiB allocated for the client's
 * frame, 43 to 69 KiB for the backend's session, the heap within 64 KiB of the baseline; the first session of a
 * proxy keeps about 600 KiB for good, hence the warm-up.
 */
class HugeFrameMemoryTest {

    /** Unknown data opcode 0x3, FIN, 64-bit length 0x7FFFFFFF, no payload. */
    private static final byte[] SERVER_FRAME = {(byte) 0x83, 0x7F, 0, 0, 0, 0, 0x7F, (byte) 0xFF, (byte) 0xFF,
            (byte) 0xFF};
    /** The same from a client: masked, with a mask key and still no payload. */
    private static final byte[] CLIENT_FRAME = {(byte) 0x83, (byte) 0xFF, 0, 0, 0, 0, 0x7F, (byte) 0xFF, (byte) 0xFF,
            (byte) 0xFF, 1, 2, 3, 4};
    /** The same opcode from a backend, announcing no payload: refused as well, allocating nothing. */
    private static final byte[] HARMLESS_SERVER_FRAME = {(byte) 0x83, 0};
    /** The same from a client. */
    private static final byte[] HARMLESS_CLIENT_FRAME = {(byte) 0x83, (byte) 0x80, 1, 2, 3, 4};
    /** The most the attack may cost, in bytes allocated and in heap growth after a full GC. */
    private static final long ONE_MIB = 1024 * 1024;

    private RawBackend backend;
    private ForkedProxy proxy;

    @AfterEach
    void stop() throws Exception {
        if (proxy != null) {
            proxy.close();
        }
        backend.close();
    }

    private ForkedProxy fork(RawBackend target) throws Exception {
        backend = target;
        proxy = ForkedProxy.start(target.uri());
        return proxy;
    }

    /** What the proxy's heap was before an attack: after a full GC, and the bytes allocated so far. */
    private record Baseline(long heap, long allocated) {
    }

    private Baseline baseline() throws Exception {
        return new Baseline(proxy.heapAfterGc(), proxy.allocated());
    }

    /**
     * The proxy allocated less than 1 MiB since {@code before} and keeps less than 1 MiB more heap after a GC; it is
     * alive and its heap is small. Called once both legs are closed, so that the proxy's whole answer is measured.
     * {@code label} names the figures printed.
     */
    private void assertAttackCostLittle(Baseline before, String label) throws Exception {
        long allocated = proxy.allocated() - before.allocated();
        long heap = proxy.assertHeapBounded("after a huge frame from a " + label);
        long growth = heap - before.heap();
        // The figures docs/security.md quotes.
        System.out.printf("huge frame from a %s: proxy heap after GC %d KiB (%+d KiB), %d KiB allocated%n", label,
                heap / 1024, growth / 1024, allocated / 1024);
        assertThat(growth).as("heap growth after GC, in bytes, over %d KiB", before.heap() / 1024)
                .isLessThan(ONE_MIB);
        assertThat(allocated).as("bytes the proxy allocated from the attack to its close").isLessThan(ONE_MIB);
    }

    @Test
    void refusesTheFrameFromAClientWith1002WithoutAllocatingIt() throws Exception {
        fork(RawBackend.recording());
        try (RawWebSocket client = RawWebSocket.connect(proxy.ws("/warm-up"))) {
            client.sendRaw(HARMLESS_CLIENT_FRAME);
            assertThat(client.readClose().closeCode()).isEqualTo(1002);
        }
        assertThat(backend.nextEnd(10)).isEqualTo("close:1001");
        Baseline before;
        try (RawWebSocket client = RawWebSocket.connect(proxy.ws("/attack"))) {
            before = baseline(); // with the session open: what is measured is the frame and the closes
            client.sendRaw(CLIENT_FRAME);
            assertThat(client.readClose().closeCode()).isEqualTo(1002);
        }
        assertThat(backend.nextEnd(10)).as("the backend's leg").isEqualTo("close:1001");
        assertAttackCostLittle(before, "client");
        try (RawWebSocket next = RawWebSocket.connect(proxy.ws("/next"))) {
            next.sendClose(1000, "");
            assertThat(next.readClose().closeCode()).as("a session after the attack").isEqualTo(1000);
        }
    }

    @Test
    void refusesTheFrameFromABackendWith1014ToTheClientWithoutAllocatingIt() throws Exception {
        AtomicBoolean attacking = new AtomicBoolean();
        fork(RawBackend.upgradingThen((socket, out) -> {
            out.write(attacking.get() ? SERVER_FRAME : HARMLESS_SERVER_FRAME);
            out.flush();
        }));
        try (RawWebSocket client = RawWebSocket.connect(proxy.ws("/warm-up"))) {
            assertThat(client.readClose().closeCode()).isEqualTo(1014);
        }
        assertThat(backend.nextEnd(10)).isEqualTo("close:1002");
        Baseline before = baseline();
        attacking.set(true);
        try (RawWebSocket client = RawWebSocket.connect(proxy.ws("/attack"))) {
            assertThat(client.readClose().closeCode()).isEqualTo(1014);
        }
        assertThat(backend.nextEnd(10)).as("the backend's leg").isEqualTo("close:1002");
        assertAttackCostLittle(before, "backend");
    }
}
