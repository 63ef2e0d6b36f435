package dev.wsproxy.benchmark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.URI;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;

class ReportTest {

    @Test
    void spreadGivesMedianAndRange() {
        Report.Spread odd = Report.Spread.of(List.of(3.0, 1.0, 2.0));
        Report.Spread even = Report.Spread.of(List.of(4.0, 1.0, 2.0, 3.0));

        assertThat(odd.median()).isEqualTo(2.0);
        assertThat(even.median()).isEqualTo(2.5);
        assertThat(even.min()).isEqualTo(1.0);
        assertThat(even.max()).isEqualTo(4.0);
        assertThat(even.format()).isEqualTo("2.50 (1.00–4.00)");
        assertThat(Report.Spread.of(List.of()).format()).isEqualTo("–");
    }

    @Test
    void numbersKeepThreeSignificantFiguresAndGroupThousands() {
        assertThat(Report.number(16.34)).isEqualTo("16.3");
        assertThat(Report.number(2.414)).isEqualTo("2.41");
        assertThat(Report.number(98765.4)).isEqualTo("98,765");
        assertThat(Report.number(Double.NaN)).isEqualTo("–");
    }

    @Test
    void tableGivesRatiosOfMediansToTheBaseline() {
        Workload echo = Workload.parse("text64x50");
        List<RunResult> results = List.of(
                run(echo, "wsproxy", 1, 30.0), run(echo, "wsproxy", 2, 34.0), run(echo, "wsproxy", 3, 32.0),
                run(echo, "nginx", 1, 16.0), run(echo, "nginx", 2, 15.0), run(echo, "nginx", 3, 17.0));

        String table = Report.markdown(List.of(echo), List.of("wsproxy", "nginx"), results, "nginx");

        assertThat(table).contains("| 64 B text echo ×50 | wsproxy |").contains("32.0 (30.0–34.0)").contains("2.00×");
        assertThat(table).contains("| 64 B text echo ×50 | nginx |").contains("1.00×");
    }

    @Test
    void openLoopRunsHaveATableOfTheirOwnWithTheirP99AgainstTheBaseline() {
        Workload closed = Workload.parse("text64x50");
        Workload paced = Workload.parse("text64x50@10k");
        List<RunResult> results = List.of(run(closed, "wsproxy", 1, 30.0), run(closed, "nginx", 1, 15.0),
                run(paced, "wsproxy", 1, 30.0, 150.0), run(paced, "nginx", 1, 15.0, 100.0));

        String table = Report.markdown(List.of(closed, paced), List.of("wsproxy", "nginx"), results, "nginx");

        assertThat(table.indexOf("**Echo at a fixed rate")).isPositive();
        String open = table.substring(table.indexOf("**Echo at a fixed rate"));
        assertThat(open).contains("| 64 B text echo ×50 at 10,000 msg/s | wsproxy |").contains("| 1.50× | 2.00× |")
                .doesNotContain("| 64 B text echo ×50 |");
    }

    private static RunResult run(Workload workload, String target, int rep, double cpu) {
        return run(workload, target, rep, cpu, 100.0);
    }

    private static RunResult run(Workload workload, String target, int rep, double cpu, double p99) {
        Map<String, Double> metrics = RunResult.newMetrics();
        metrics.put(RunResult.MSG_PER_S, 1000.0);
        metrics.put(RunResult.P99_US, p99);
        metrics.put(RunResult.CPU_US_PER_MSG, cpu);
        return new RunResult(workload, target, rep, metrics, 0, null);
    }

    @Test
    void parsesTheIssuesWorkloads() {
        assertThat(Workload.parseList(Workload.DEFAULTS)).extracting(Workload::label).containsExactly(
                "64 B text echo ×1", "64 B text echo ×50", "64 B text echo ×500", "16 KiB binary echo ×50",
                "1 MiB binary echo ×4", "handshake storm (connect, 64 B echo, close) ×16",
                "idle hold 1,000 connections", "idle hold 10,000 connections");
        assertThat(Workload.parse("bin1mx4").size()).isEqualTo(1024 * 1024);
        assertThat(Workload.parse("storm32").connections()).isEqualTo(32);
        assertThat(Workload.parse("text64x50@10k")).isEqualTo(
                new Workload("text64x50@10k", Workload.Kind.PACED, true, 64, 50, 10_000));
        assertThat(Workload.parse("bin16kx4@250").label()).isEqualTo("16 KiB binary echo ×4 at 250 msg/s");
        assertThatThrownBy(() -> Workload.parse("text64x50@0")).hasMessageContaining("above 0");
        assertThatThrownBy(() -> Workload.parse("text64x0@10")).hasMessageContaining("above 0");
        assertThatThrownBy(() -> Workload.parse("echo")).hasMessageContaining("expected: textNxC");
    }

    @Test
    void parsesTargetsAndLoopbackSourceAddresses() {
        Target target = Target.parse("wsproxy=ws://127.0.0.1:19002/,pid=42,admin=19101,pretouch,warmup");

        assertThat(target).isEqualTo(new Target("wsproxy", URI.create("ws://127.0.0.1:19002/"), 42, 19101, true, true));
        assertThat(Suite.sourceAddresses("127.0.0.2-127.0.0.4,127.0.1.1"))
                .containsExactly("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.1.1");
        assertThatThrownBy(() -> Suite.sourceAddresses("10.0.0.1")).hasMessageContaining("loopback");
        assertThatThrownBy(() -> Target.parse("x=http://127.0.0.1/")).hasMessageContaining("ws://");
    }
}
