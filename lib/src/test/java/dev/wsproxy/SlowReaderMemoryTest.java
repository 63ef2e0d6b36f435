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
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A client that stops reading must hold back the backend through TCP: the proxy buffers at most a frame per
 * direction. The proxy runs in a forked JVM with a 64 MiB heap and 64 MiB of direct memory while the backend pushes
 * 256 MiB at a client that does not read; an unbounded buffer would kill it with an OutOfMemoryError.
 */
class SlowReaderMemoryTest {

    private static final int MESSAGES = 4096;
    private static final int MESSAGE_SIZE = 64 * 1024;
    private static final long TOTAL = (long) MESSAGES * MESSAGE_SIZE; // 256 MiB

    private TestBackend backend;
    private Process proxy;
    private BufferedReader proxyOut;
    private Writer proxyIn;

    @BeforeEach
    void start() throws Exception {
        backend = new TestBackend("pusher");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        proxy = new ProcessBuilder(List.of(java, "-Xmx64m", "-XX:MaxDirectMemorySize=64m",
                "-XX:+ExitOnOutOfMemoryError", "-cp", System.getProperty("java.class.path"),
                ForkedProxyMain.class.getName(), backend.uri().toString()))
                .redirectError(ProcessBuilder.Redirect.INHERIT)
                .start();
        proxyOut = new BufferedReader(new InputStreamReader(proxy.getInputStream(), StandardCharsets.UTF_8));
        proxyIn = new OutputStreamWriter(proxy.getOutputStream(), StandardCharsets.UTF_8);
    }

    @AfterEach
    void stop() throws Exception {
        proxyIn.close();
        if (!proxy.waitFor(20, TimeUnit.SECONDS)) {
            proxy.destroyForcibly();
        }
        backend.close();
    }

    private String proxyLine(String prefix) throws Exception {
        String line;
        do {
            line = proxyOut.readLine();
            assertThat(line).as("the forked proxy is alive").isNotNull();
        } while (!line.startsWith(prefix));
        return line.substring(prefix.length()).trim();
    }

    @Test
    void holdsBackTheBackendWhileTheClientDoesNotRead() throws Exception {
        int port = Integer.parseInt(proxyLine("listening"));
        URI uri = URI.create("ws://127.0.0.1:" + port + "/push");
        try (RawWebSocket client = RawWebSocket.connect(uri, 64 * 1024)) {
            client.send(true, RawWebSocket.TEXT, ("push:" + MESSAGES + ":" + MESSAGE_SIZE)
                    .getBytes(StandardCharsets.UTF_8));

            // Wait until the backend can send no more: its writes stall once every buffer on the way is full.
            long stalledAt = backend.awaitPushStalled();
            assertThat(stalledAt).as("bytes the backend could send to a client that reads nothing")
                    .isLessThan(32L * 1024 * 1024);
            assertThat(proxy.isAlive()).isTrue();

            proxyIn.write("heap\n");
            proxyIn.flush();
            long heap = Long.parseLong(proxyLine("heap"));
            // The figures docs/security.md quotes.
            System.out.printf("slow reader: backend stalled after %d KiB; proxy heap after GC %d KiB%n",
                    stalledAt / 1024, heap / 1024);
            assertThat(heap).as("proxy heap after GC while stalled").isLessThan(48L * 1024 * 1024);

            // The client reads again: everything arrives, and the proxy survived it.
            long received = 0;
            int messages = 0;
            while (received < TOTAL) {
                RawWebSocket.Frame frame = client.read();
                received += frame.payload().length;
                if (frame.fin()) {
                    messages++;
                }
            }
            assertThat(received).isEqualTo(TOTAL);
            assertThat(messages).isEqualTo(MESSAGES);
            assertThat(proxy.isAlive()).isTrue();
            client.sendClose(1000, "");
            assertThat(client.readClose().closeCode()).isEqualTo(1000);
        }
    }
}
