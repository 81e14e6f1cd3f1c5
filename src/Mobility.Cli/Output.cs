using System.Buffers;
using System.Net;
using System.Text;
using System.Text.Json;
using Mobility.Net.Text;
using Mobility.Protocol.Records;
using Spectre.Console;

namespace Mobility.Cli;

/// <summary>
/// Where a command writes: one JSON object per line with <c>--json</c>; otherwise human text, laid
/// out by Spectre.Console when stdout is a terminal and plain when it is not. Errors are one line on
/// stderr.
/// </summary>
public sealed class Output
{
    private readonly IAnsiConsole? _console;

    public Output(TextWriter stdout, TextWriter stderr, bool json, bool terminal)
    {
        Out = stdout;
        Error = stderr;
        Json = json;
        if (terminal && !json)
        {
            _console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(stdout) });
        }
    }

    public TextWriter Out { get; }

    public TextWriter Error { get; }

    /// <summary>Machine-readable output was asked for.</summary>
    public bool Json { get; }

    public void Line(string text)
    {
        Out.WriteLine(text);
        Out.Flush();
    }

    /// <summary>Writes one compact JSON object as one line.</summary>
    public void WriteJson(Action<Utf8JsonWriter> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            write(writer);
            writer.WriteEndObject();
        }

        Out.WriteLine(Encoding.UTF8.GetString(buffer.WrittenSpan));
        Out.Flush();
    }

    /// <summary>Key/value rows: a borderless grid on a terminal, "key: value" lines otherwise.</summary>
    public void Rows(IEnumerable<(string Key, string Value)> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (_console is not null)
        {
            var grid = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
            foreach (var (key, value) in rows)
            {
                grid.AddRow(new Markup($"[bold]{Markup.Escape(key)}[/]"), new Text(value));
            }

            _console.Write(grid);
        }
        else
        {
            foreach (var (key, value) in rows)
            {
                Out.WriteLine($"{key}: {value}");
            }
        }

        Out.Flush();
    }

    /// <summary>Reports a failure as one line on stderr and returns its exit code.</summary>
    public int Fail(int exitCode, string message)
    {
        Error.WriteLine(Json ? JsonError(exitCode, message) : $"mob: {OneLine(message)}");
        Error.Flush();
        return exitCode;
    }

    /// <summary>An error as one JSON object (what <c>--json</c> prints on stderr): <c>{"error":"...","exit_code":N}</c>.</summary>
    public static string JsonError(int exitCode, string message)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("error", OneLine(message));
            writer.WriteNumber("exit_code", exitCode);
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    public static string OneLine(string? text) => SafeText.OneLine(text);

    public static string Format(IPEndPoint? endPoint) => endPoint?.ToString() ?? "-";

    /// <summary>Human rows of a record.</summary>
    public static IEnumerable<(string Key, string Value)> RecordRows(GnsRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        yield return ("guid", record.Guid.ToString());
        yield return ("name", record.Name ?? "-");
        yield return ("version", record.Version.ToString(System.Globalization.CultureInfo.InvariantCulture));
        yield return ("issued", record.IssuedAt.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture));
        yield return ("ttl", $"{record.TtlSeconds}s");
        if (record.Locators.IsEmpty)
        {
            yield return ("locator", "-");
        }

        foreach (var locator in record.Locators)
        {
            yield return ("locator", locator.ToString());
        }
    }

    /// <summary>Writes a record's fields (not the enclosing braces) in JSON.</summary>
    public static void WriteRecord(Utf8JsonWriter writer, GnsRecord record)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(record);
        writer.WriteString("guid", record.Guid.ToString());
        if (record.Name is null)
        {
            writer.WriteNull("name");
        }
        else
        {
            writer.WriteString("name", record.Name);
        }

        writer.WriteNumber("version", record.Version);
        writer.WriteString("issuedAt", record.IssuedAt.UtcDateTime);
        writer.WriteNumber("ttlSeconds", record.TtlSeconds);
        writer.WriteBase64String("publicKey", record.PublicKey.Span);
        writer.WriteStartArray("locators");
        foreach (var locator in record.Locators)
        {
            writer.WriteStartObject();
            writer.WriteString("address", locator.Address.ToString());
            writer.WriteNumber("port", locator.Port);
            writer.WriteString("kind", locator.Kind.ToString().ToLowerInvariant());
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }
}
