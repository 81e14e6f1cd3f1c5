using System.Diagnostics;
using System.Globalization;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Mobility.Cli.Demo;

/// <summary>
/// What a running demo looks like: the live panel (Spectre.Console, redrawn ten times a second on a
/// terminal) or one plain progress line per second. Reads only the run's public state.
/// </summary>
public sealed class DemoProgress(DemoRun run)
{
    /// <summary>Events kept on the live panel (it must fit a 24-line terminal).</summary>
    private const int MaxEvents = 4;

    /// <summary>The "now" rate is taken over at least this long, so it does not flicker.</summary>
    private static readonly TimeSpan RateWindow = TimeSpan.FromMilliseconds(500);

    private readonly Lock _gate = new();
    private readonly Queue<string> _events = new();
    private readonly long _startedAt = Stopwatch.GetTimestamp();
    private long _sampleAt = Stopwatch.GetTimestamp();
    private long _sampleBytes;
    private double _rateNow;

    public void OnEvent(string text)
    {
        lock (_gate)
        {
            _events.Enqueue(string.Create(CultureInfo.InvariantCulture, $"{Stopwatch.GetElapsedTime(_startedAt).TotalSeconds,6:0.00}s  {text}"));
            if (_events.Count > MaxEvents)
            {
                _events.Dequeue();
            }
        }
    }

    /// <summary>The live panel.</summary>
    public IRenderable Render()
    {
        var received = run.Traffic.Received;
        var sent = run.Traffic.Sent;
        var rate = RateNow(received);
        var elapsed = run.StreamSeconds;
        var settings = run.Settings;
        var fraction = settings.Budget == DemoBudgetKind.Size
            ? (double)sent / settings.Size
            : elapsed / settings.Duration.TotalSeconds;

        var hosts = new Table().Border(TableBorder.Simple).AddColumns("host", "GUID", "address now", "transport");
        foreach (var host in run.Hosts)
        {
            hosts.AddRow(new Markup($"[bold]{host.Name}[/]"), new Text(host.Guid.ToString()[..16] + "…"), new Markup($"[cyan]{host.Address}[/]"),
                new Text(host.Listening.ToString()));
        }

        var progress = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
        var budget = settings.Budget == DemoBudgetKind.Size ? $"{Units.Bytes(sent)} of {Units.Bytes(settings.Size)}" : $"{elapsed:0.0} s of {settings.Duration.TotalSeconds:0.#} s";
        progress.AddRow(new Markup("[bold]progress[/]"), new Markup($"{Bar(fraction)} {Markup.Escape(budget)} ({run.Phase.ToString().ToLowerInvariant()})"));
        progress.AddRow(new Markup("[bold]bytes[/]"), new Text($"sent {Units.Bytes(sent)}, received {Units.Bytes(received)}"));
        progress.AddRow(new Markup("[bold]throughput[/]"),
            new Text($"{Units.Rate(rate)} now, {Units.Rate(elapsed > 0 ? received / elapsed : 0)} average"));

        string[] events;
        lock (_gate)
        {
            events = [.. _events];
        }

        var log = new Rows(events.Select(e => new Text(e, new Style(Color.Grey)) { Overflow = Overflow.Ellipsis }));
        return new Rows(
            new Markup("[bold]mob demo[/]: alice streams to bob over one mobile TCP connection while they move"),
            hosts,
            progress,
            DemoReport.MovesTable(run.Moves),
            log);
    }

    /// <summary>One plain progress line.</summary>
    public string Line()
    {
        var received = run.Traffic.Received;
        var addresses = string.Join("  ", run.Hosts.Select(h => $"{h.Name} {h.Address}"));
        return string.Create(CultureInfo.InvariantCulture,
            $"{run.StreamSeconds,6:0.00}s  sent {Units.Bytes(run.Traffic.Sent)}  received {Units.Bytes(received)}  {Units.Rate(RateNow(received))}  {addresses}  moves {run.Moves.Count(m => m.Resumed)}/{DemoRun.MoveCount}");
    }

    private static string Bar(double fraction)
    {
        const int Width = 30;
        var filled = (int)Math.Round(Math.Clamp(fraction, 0, 1) * Width);
        return $"[green]{new string('━', filled)}[/][grey]{new string('━', Width - filled)}[/]";
    }

    private double RateNow(long received)
    {
        lock (_gate)
        {
            var now = Stopwatch.GetTimestamp();
            var elapsed = Stopwatch.GetElapsedTime(_sampleAt, now);
            if (elapsed >= RateWindow)
            {
                _rateNow = (received - _sampleBytes) / elapsed.TotalSeconds;
                _sampleAt = now;
                _sampleBytes = received;
            }

            return _rateNow;
        }
    }
}
