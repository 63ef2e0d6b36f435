package dev.wsproxy.examples.standalone;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.InstanceOfAssertFactories.STRING;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.ServerSocket;

import org.junit.jupiter.api.Test;

/** The launcher's exit statuses and output for the runs that end before serving; in process. */
class LauncherTest {

    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final ByteArrayOutputStream err = new ByteArrayOutputStream();
    private final Launcher launcher = new Launcher(new PrintStream(out, true, UTF_8), new PrintStream(err, true, UTF_8));

    @Test
    void printsUsageToStdoutAndExits0OnHelp() {
        assertThat(launcher.run("--help")).isEqualTo(Launcher.EXIT_OK);

        assertThat(out.toString(UTF_8)).isEqualTo(LauncherOptions.usage()).startsWith("Usage: ");
        assertThat(err.toString(UTF_8)).isEmpty();
    }

    @Test
    void printsOneLineErrorAndHintToStderrAndExits2OnBadFlag() {
        assertThat(launcher.run("--route", "/ws/=ws://127.0.0.1:3000", "--idle-timeout", "soon"))
                .isEqualTo(Launcher.EXIT_USAGE);

        assertThat(out.toString(UTF_8)).isEmpty();
        assertThat(err.toString(UTF_8).lines()).containsExactly(
                "wsproxy: --idle-timeout: 'soon' (expected: a duration like 500ms, 5s, 2m or 1h)",
                "Run with --help for usage.");
    }

    @Test
    void exits2WithoutARoute() {
        assertThat(launcher.run()).isEqualTo(Launcher.EXIT_USAGE);

        assertThat(err.toString(UTF_8)).startsWith("wsproxy: --route: missing");
    }

    @Test
    void exits1WhenTheAddressIsTaken() throws Exception {
        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            String listen = "127.0.0.1:" + taken.getLocalPort();

            assertThat(launcher.run("--listen", listen, "--route", "/ws/=ws://127.0.0.1:3000"))
                    .isEqualTo(Launcher.EXIT_FAILURE);

            assertThat(out.toString(UTF_8)).isEmpty();
            assertThat(err.toString(UTF_8).lines()).singleElement(STRING)
                    .startsWith("wsproxy: --listen: cannot listen on " + listen + " (");
        }
    }
}
