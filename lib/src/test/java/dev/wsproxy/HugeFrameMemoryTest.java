package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

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
    private Process proxy;
    private BufferedReader proxyOut;
    private Writer proxyIn;

    @AfterEach
    void stop() throws Exception {
        if (proxy != null) {
            proxyIn.close();
            if (!proxy.waitFor(20, TimeUnit.SECONDS)) {
                proxy.destroyForcibly();
            }
        }
        backend.close();
    }

    private int fork(RawBackend target) throws Exception {
        backend = target;
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        proxy = new ProcessBuilder(List.of(java, "-Xmx64m", "-XX:MaxDirectMemorySize=64m",
                "-XX:+ExitOnOutOfMemoryError", "-cp", System.getProperty("java.class.path"),
                ForkedProxyMain.class.getName(), target.uri().toString()))
                .redirectError(ProcessBuilder.Redirect.INHERIT)
                .start();
        proxyOut = new BufferedReader(new InputStreamReader(proxy.getInputStream(), StandardCharsets.UTF_8));
        proxyIn = new OutputStreamWriter(proxy.getOutputStream(), StandardCharsets.UTF_8);
        return Integer.parseInt(proxyLine("listening"));
    }

    private String proxyLine(String prefix) throws Exception {
        String line;
        do {
            line = proxyOut.readLine();
            assertThat(line).as("the forked proxy is alive").isNotNull();
        } while (!line.startsWith(prefix));
        return line.substring(prefix.length()).trim();
    }

    private void assertHeapSmallAndServing(int port) throws Exception {
        proxyIn.write("heap\n");
        proxyIn.flush();
        long heap = Long.parseLong(proxyLine("heap"));
        System.out.printf("huge frame from a client: proxy heap after GC %d KiB%n", heap / 1024);
        assertThat(heap).as("proxy heap after GC").isLessThan(48L * 1024 * 1024);
        assertThat(proxy.isAlive()).isTrue();
        try (RawWebSocket next = RawWebSocket.connect(URI.create("ws://127.0.0.1:" + port + "/next"))) {
            next.sendClose(1000, "");
            assertThat(next.readClose().closeCode()).as("a session after the attack").isEqualTo(1000);
        }
    }

    @Test
    void refusesTheFrameFromAClientWith1002WithoutAllocatingIt() throws Exception {
        int port = fork(RawBackend.recording());
        try (RawWebSocket client = RawWebSocket.connect(URI.create("ws://127.0.0.1:" + port + "/attack"))) {
            client.sendRaw(CLIENT_FRAME);
            assertThat(client.readClose().closeCode()).isEqualTo(1002);
        }
        assertHeapSmallAndServing(port);
    }

    @Test
    void refusesTheFrameFromABackendWith1014ToTheClientWithoutAllocatingIt() throws Exception {
        int port = fork(RawBackend.upgradingThen((socket, out) -> {
            out.write(SERVER_FRAME);
            out.flush();
        }));
        try (RawWebSocket client = RawWebSocket.connect(URI.create("ws://127.0.0.1:" + port + "/attack"))) {
            assertThat(client.readClose().closeCode()).isEqualTo(1014);
        }
        proxyIn.write("heap\n");
        proxyIn.flush();
        long heap = Long.parseLong(proxyLine("heap"));
        System.out.printf("huge frame from a backend: proxy heap after GC %d KiB%n", heap / 1024);
        assertThat(heap).as("proxy heap after GC").isLessThan(48L * 1024 * 1024);
        assertThat(proxy.isAlive()).isTrue();
    }
}
