using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Mobility.Cli.Demo;

/// <summary>The end of a demo, as text (plain or Spectre.Console) or as one JSON object.</summary>
public static class DemoReport
{
    private const string Legend =
        "Times from the move instant. stall: until the first byte bob's application read over the new path; gap: from bob's read " +
        "before that byte to that byte; GNS stored: the new signed record(s) acknowledged; push: alice's GNS watch delivered bob's new address.";

    private static readonly string[] Columns = ["move", "who", "from -> to", "GNS stored", "push", "stall", "gap"];

    /// <summary>The report's properties, written into the JSON object <paramref name="w"/> is in.</summary>
    public static void WriteJson(Utf8JsonWriter w, DemoResult result)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(result);
        w.WriteBoolean("ok", result.Ok);
        w.WriteString("verdict", result.Verdict);
        w.WriteNumber("bytes_sent", result.BytesSent);
        w.WriteNumber("bytes_received", result.BytesReceived);
        w.WriteString("sha256_sent", Units.Hex(result.SentHash));
        w.WriteString("sha256_received", Units.Hex(result.ReceivedHash));
        w.WriteNumber("seconds", Math.Round(result.StreamSeconds, 3));
        w.WriteNumber("throughput_bytes_per_second", Math.Round(Throughput(result)));
        if (result.ClientStatistics is { } stats)
        {
            w.WriteNumber("bytes_resent", stats.BytesResent);
            w.WriteNumber("resumes", stats.Moves);
        }

        w.WriteString("seed", result.Seed.ToString("x16", CultureInfo.InvariantCulture));
        w.WriteStartObject("gns");
        w.WriteString("udp", result.GnsUdp.ToString());
        w.WriteString("grpc", result.GnsGrpc.ToString());
        w.WriteString("store", "sqlite");
        w.WriteEndObject();
        w.WriteStartArray("hosts");
        foreach (var host in result.Hosts)
        {
            w.WriteStartObject();
            w.WriteString("name", host.Name);
            w.WriteString("guid", host.Guid.ToString());
            w.WriteString("address", host.Address.ToString());
            w.WriteString("transport", host.Listening.ToString());
            w.WriteNumber("record_version", host.RecordVersion);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteStartArray("moves");
        foreach (var move in result.Moves)
        {
            w.WriteStartObject();
            w.WriteNumber("move", move.Number);
            Strings(w, "who", move.Who);
            w.WriteStartArray("hosts");
            foreach (var host in move.Hosts)
            {
                w.WriteStartObject();
                w.WriteString("host", host.Host);
                w.WriteString("from", host.From.ToString());
                w.WriteString("to", host.To.ToString());
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteBoolean("resumed", move.Resumed);
            Number(w, "stall_ms", move.StallMs);
            Number(w, "gap_ms", move.GapMs);
            Number(w, "resume_accepted_ms", move.ResumedMs);
            Number(w, "published_ms", move.PublishedMs);
            Number(w, "push_ms", move.PushedMs);
            if (move.ResumedPath is { } path)
            {
                w.WriteStartObject("path");
                w.WriteString("client", path.Client.ToString());
                w.WriteString("server", path.Server.ToString());
                w.WriteEndObject();
            }
            else
            {
                w.WriteNull("path");
            }

            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteNumber("log_warnings", result.LogProblemCount);
        Strings(w, "log", result.LogProblems);
    }

    /// <summary>Plain lines: for pipes, logs and terminals that asked for --plain.</summary>
    public static void WritePlain(TextWriter output, DemoResult result)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(result);
        var rows = result.Moves.Select(Row).Prepend(Columns).ToList();
        var widths = Enumerable.Range(0, Columns.Length).Select(c => rows.Max(r => r[c].Length)).ToArray();
        output.WriteLine();
        foreach (var row in rows)
        {
            output.WriteLine(string.Join("  ", row.Select((cell, c) => c >= 3 ? cell.PadLeft(widths[c]) : cell.PadRight(widths[c]))).TrimEnd());
        }

        output.WriteLine();
        foreach (var (key, value) in Summary(result))
        {
            output.WriteLine($"{key,-11} {value}");
        }

        output.WriteLine(Legend);
        foreach (var line in result.LogProblems)
        {
            output.WriteLine($"log: {line}");
        }

        output.WriteLine(result.Verdict);
        output.Flush();
    }

    public static void WriteRich(IAnsiConsole console, DemoResult result)
    {
        ArgumentNullException.ThrowIfNull(console);
        ArgumentNullException.ThrowIfNull(result);
        console.WriteLine();
        console.Write(MovesTable(result.Moves));
        var grid = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
        foreach (var (key, value) in Summary(result))
        {
            grid.AddRow(new Markup($"[bold]{Markup.Escape(key)}[/]"), new Text(value));
        }

        console.Write(grid);
        console.MarkupLine($"[grey]{Markup.Escape(Legend)}[/]");
        foreach (var line in result.LogProblems)
        {
            console.MarkupLine($"[yellow]log:[/] {Markup.Escape(line)}");
        }

        console.MarkupLine(result.Ok ? $"[bold green]{Markup.Escape(result.Verdict)}[/]" : $"[bold red]{Markup.Escape(result.Verdict)}[/]");
    }

    /// <summary>The moves so far as a table (also used by the live display).</summary>
    public static IRenderable MovesTable(IReadOnlyList<DemoMove> moves)
    {
        var table = new Table().Border(TableBorder.Rounded).Title("moves");
        for (var c = 0; c < Columns.Length; c++)
        {
            var column = new TableColumn(Columns[c]);
            table.AddColumn(c >= 3 ? column.RightAligned() : column);
        }

        foreach (var move in moves)
        {
            var cells = Row(move);
            // One host per line, so that the table fits 80 columns.
            cells[1] = string.Join('\n', move.Who);
            cells[2] = move.Hosts.Count == 0 ? "-" : string.Join('\n', move.Hosts.Select(h => $"{h.From} → {h.To}"));
            table.AddRow(cells.Select(cell => (IRenderable)new Text(cell) { Overflow = Overflow.Ellipsis }).ToArray());
        }

        if (moves.Count == 0)
        {
            table.AddEmptyRow();
        }

        return table;
    }

    public static double Throughput(DemoResult result)
        => result.StreamSeconds > 0 ? result.BytesReceived / result.StreamSeconds : 0;

    private static string[] Row(DemoMove move) =>
    [
        move.Number.ToString(CultureInfo.InvariantCulture),
        string.Join('+', move.Who),
        move.Hosts.Count == 0 ? "-" : string.Join(", ", move.Hosts.Select(h => $"{h.From} -> {h.To}")),
        Units.Ms(move.PublishedMs),
        Units.Ms(move.PushedMs),
        move.Resumed ? Units.Ms(move.StallMs) : "waiting",
        Units.Ms(move.GapMs),
    ];

    private static IEnumerable<(string Key, string Value)> Summary(DemoResult result)
    {
        yield return ("sent", $"{Units.Bytes(result.BytesSent)} ({result.BytesSent.ToString(CultureInfo.InvariantCulture)} bytes)");
        yield return ("received", $"{Units.Bytes(result.BytesReceived)} ({result.BytesReceived.ToString(CultureInfo.InvariantCulture)} bytes)");
        yield return ("sha256 sent", Units.Hex(result.SentHash));
        yield return ("sha256 rcvd", Units.Hex(result.ReceivedHash));
        var resent = result.ClientStatistics is { } s ? $"; {Units.Bytes(s.BytesResent)} resent after moves" : "";
        yield return ("throughput", string.Create(CultureInfo.InvariantCulture,
            $"{Units.Rate(Throughput(result))} over {result.StreamSeconds:0.00} s{resent}"));
    }


    private static void Strings(Utf8JsonWriter w, string name, IEnumerable<string> values)
    {
        w.WriteStartArray(name);
        foreach (var value in values)
        {
            w.WriteStringValue(value);
        }

        w.WriteEndArray();
    }

    private static void Number(Utf8JsonWriter w, string name, double? value)
    {
        if (value is { } v)
        {
            w.WriteNumber(name, Math.Round(v, 3));
        }
        else
        {
            w.WriteNull(name);
        }
    }
}
