using System.Text.RegularExpressions;

namespace Mobility.Daemon.Tests.Unit;

/// <summary>
/// Event ids are unique in a process and each component keeps to its range (docs/architecture.md,
/// "Logging"); every [LoggerMessage] is written one way: <c>[LoggerMessage(id, LogLevel.X, "message")]</c>.
/// </summary>
public sealed partial class LoggingConventionTests
{
    /// <summary>Folder under src/ -> the event-id range it owns.</summary>
    private static readonly (string Folder, int First, int Last)[] Ranges =
    [
        ("Mobility.Gns/", 1000, 1599),
        ("Mobility.Gns.Redis/", 1600, 1699),
        ("Mobility.Gns.Dns/", 1700, 1799),
        ("Mobility.Gns.Client/", 1800, 1899),
        ("Mobility.Daemon/", 2000, 8999),
        ("Mobility.Transport/", 9000, 9999),
        ("Mobility.Relay/", 10000, 10399),
        ("Mobility.Daemon/Relay/", 10400, 10499),
        ("Mobility.Daemon.Host/", 5900, 5999),

        // Mobile TCP's connection reversal: a range of its own, lent out of the relay's (which uses none of it).
        ("Mobility.Transport/Connections/MobileConnection.Reverse.cs", 10200, 10249),
    ];

    [GeneratedRegex(@"\[LoggerMessage\((?<args>[^\]]*)")]
    private static partial Regex Attribute();

    [GeneratedRegex(@"^\s*(?<id>[0-9]+|[A-Za-z]\w*), LogLevel\.\w+,")]
    private static partial Regex PositionalStyle();

    [GeneratedRegex(@"const int (?<name>\w+) = (?<value>[0-9]+);")]
    private static partial Regex Constant();

    [Fact]
    public void Every_event_id_is_unique_in_its_components_range_and_written_one_way()
    {
        var src = Path.Combine(RepositoryRoot(), "src");
        var seen = new Dictionary<int, string>();
        var problems = new List<string>();
        foreach (var file in Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories).Where(f => !f.Contains("/obj/", StringComparison.Ordinal)))
        {
            var text = File.ReadAllText(file);
            var relative = Path.GetRelativePath(src, file);
            var constants = Constant().Matches(text).ToDictionary(m => m.Groups["name"].Value, m => int.Parse(m.Groups["value"].Value, System.Globalization.CultureInfo.InvariantCulture));
            foreach (Match attribute in Attribute().Matches(text))
            {
                var style = PositionalStyle().Match(attribute.Groups["args"].Value);
                if (!style.Success)
                {
                    problems.Add($"{relative}: not [LoggerMessage(id, LogLevel.X, \"...\")]: {attribute.Value}");
                    continue;
                }

                var idText = style.Groups["id"].Value;
                var id = constants.TryGetValue(idText, out var value) ? value : int.Parse(idText, System.Globalization.CultureInfo.InvariantCulture);
                // The most specific folder owns a file (mobilityd's relay client has its own range inside mobilityd's folder).
                var range = Ranges.Where(r => relative.StartsWith(r.Folder, StringComparison.Ordinal)).OrderByDescending(r => r.Folder.Length).Take(1).ToArray();
                if (range.Length != 1 || id < range[0].First || id > range[0].Last)
                {
                    problems.Add($"{relative}: event id {id} is outside its component's range");
                }

                if (!seen.TryAdd(id, relative))
                {
                    problems.Add($"{relative}: event id {id} is also used in {seen[id]}");
                }
            }
        }

        Assert.True(seen.Count > 100, $"only {seen.Count} [LoggerMessage] found under {src}");
        Assert.Empty(problems);
    }

    /// <summary>The clone these tests were built from (the folder of Mobility.sln).</summary>
    internal static string RepositoryRoot()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, "Mobility.sln")))
            {
                return folder.FullName;
            }
        }

        throw new DirectoryNotFoundException("Mobility.sln not found above " + AppContext.BaseDirectory);
    }
}
