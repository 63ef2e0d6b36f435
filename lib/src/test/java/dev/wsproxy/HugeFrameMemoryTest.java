package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The frame of CVE-2026-19204, an unknown opcode announcing 2 GiB of payload and sending none, on either leg of a
 * proxy that runs in a forked JVM with a 64 MiB heap and 64 MiB of direct memory: the proxy must refuse it on its
 * header, not allocate for it. In the test JVM's own multi-GiB heap, an allocation of the announced size could succeed
 * and hide the fault; here it ends the process (matrix F3, both legs).
 */
class HugeFrameMemoryTest {

    /** Unknown data opcode 0x3, FIN, 64-bit length 0x7FFFFFFF, no payload. */
    private static final byte[] SERVER_FRAME = {(byte) 0x83, 0x7F, 0, 0, 0, 0, 0x7F, (byte) 0xFF, (byte) 0xFF,
            (byte) 0xFF};
    /** The same from a client: masked, with a mask key and still no payload. */
    private static final byte[] CLIENT_FRAME = {(byte) 0x83, (byte) 0xFF, 0, 0, 0, 0, 0x7F, (byte) 0xFF, (byte) 0xFF,
            (byte) 0xFF, 1, 2, 3, 4};

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

    /** The proxy's heap is small after the attack and it is alive; {@code label} names the figure printed. */
    private void assertHeapSmall(String label) throws Exception {
        long heap = proxy.assertHeapBounded("after a huge frame from a " + label);
        // The figures docs/security.md quotes.
        System.out.printf("huge frame from a %s: proxy heap after GC %d KiB%n", label, heap / 1024);
    }

    @Test
    void refusesTheFrameFromAClientWith1002WithoutAllocatingIt() throws Exception {
        fork(RawBackend.recording());
        try (RawWebSocket client = RawWebSocket.connect(proxy.ws("/attack"))) {
            client.sendRaw(CLIENT_FRAME);
            assertThat(client.readClose().closeCode()).isEqualTo(1002);
        }
        assertHeapSmall("client");
        try (RawWebSocket next = RawWebSocket.connect(proxy.ws("/next"))) {
            next.sendClose(1000, "");
            assertThat(next.readClose().closeCode()).as("a session after the attack").isEqualTo(1000);
        }
    }

    @Test
    void refusesTheFrameFromABackendWith1014ToTheClientWithoutAllocatingIt() throws Exception {
        fork(RawBackend.upgradingThen((socket, out) -> {
            out.write(SERVER_FRAME);
            out.flush();
        }));
        try (RawWebSocket client = RawWebSocket.connect(proxy.ws("/attack"))) {
            assertThat(client.readClose().closeCode()).isEqualTo(1014);
        }
        assertHeapSmall("backend");
    }
}
