using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Net;
using Mobility.Gns.Client;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Cli.Commands;

/// <summary><c>mob gns ...</c>: talk to the Global Name Service.</summary>
public static class GnsCommands
{
    public static Command Create()
    {
        var gns = new Command("gns", "Register, look up, remove and watch records in the Global Name Service");
        gns.Subcommands.Add(Put("register", "Create or replace this host's record (upsert)", requireExisting: false));
        gns.Subcommands.Add(Put("update", "Replace this host's existing record (fails with 'not found' if there is none)", requireExisting: true));
        gns.Subcommands.Add(Lookup());
        gns.Subcommands.Add(Reverse());
        gns.Subcommands.Add(Remove());
        gns.Subcommands.Add(Watch());
        return gns;
    }

    private static Command Put(string name, string description, bool requireExisting)
    {
        var gnsOption = CommonOptions.GnsEndPoint();
        var grpcOption = CommonOptions.GrpcAddress();
        var keyOption = CommonOptions.KeyFile();
        var addrOption = new Option<Locator[]>("--addr")
        {
            Description = "Locator IP:PORT[/host|observed|relay] (repeat for several)",
            HelpName = "IP:PORT[/kind]",
            Required = true,
            Arity = ArgumentArity.OneOrMore,
            AllowMultipleArgumentsPerToken = false,
            CustomParser = ParseLocators,
        };
        var nameOption = new Option<string?>("--name") { Description = "Name to bind to the GUID (one DNS label)", HelpName = "NAME" };
        nameOption.Validators.Add(result =>
        {
            var text = result.GetValueOrDefault<string?>();
            if (text is not null && HostName.Normalize(text, out var error) is null)
            {
                result.AddError($"--name '{text}': {error}");
            }
        });
        var ttlOption = new Option<uint>("--ttl") { Description = "Seconds resolvers may cache the record (0: do not cache)", HelpName = "SECONDS", DefaultValueFactory = _ => 30 };
        var versionOption = new Option<ulong?>("--version") { Description = "Record version (default: current Unix time in microseconds)", HelpName = "N" };
        var command = new Command(name, description) { gnsOption, grpcOption, keyOption, addrOption, nameOption, ttlOption, versionOption };
        command.SetHandler(async context =>
        {
            var gns = context.Get(gnsOption)!;
            using var key = CommonOptions.LoadKey(context.Get(keyOption)!);
            var version = context.Get(versionOption) ?? CommonOptions.DefaultVersion(TimeProvider.System);
            var record = GnsRecord.Create(key, version, context.Get(addrOption)!, context.Get(ttlOption), context.Get(nameOption));
            var grpc = CommonOptions.GivenGrpc(context.Get(grpcOption));
            await using var client = CommonOptions.CreateClient(gns, grpc);
            var result = requireExisting
                ? await client.UpdateAsync(record, context.CancellationToken)
                : await client.RegisterAsync(record, context.CancellationToken);
            if (context.Output.Json)
            {
                context.Output.WriteJson(w =>
                {
                    w.WriteString("guid", key.Guid.ToString());
                    w.WriteNumber("version", result.Version);
                    if (result.Observed is null)
                    {
                        w.WriteNull("observed");
                    }
                    else
                    {
                        w.WriteString("observed", result.Observed.ToString());
                    }
                });
            }
            else
            {
                context.Output.Rows(
                [
                    ("guid", key.Guid.ToString()),
                    ("version", result.Version.ToString(CultureInfo.InvariantCulture)),
                    ("observed", Output.Format(result.Observed)),
                ]);
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static Command Lookup()
    {
        var gnsOption = CommonOptions.GnsEndPoint();
        var grpcOption = CommonOptions.GrpcAddress();
        var target = new Argument<string>("guid|name") { Description = "A GUID (40 hex characters) or a name" };
        var command = new Command("lookup", "Print the verified record of a GUID or name") { gnsOption, grpcOption, target };
        command.SetHandler(async context =>
        {
            var gns = context.Get(gnsOption)!;
            var text = context.Get(target)!;
            string? name = null;
            if (!HostGuid.TryParse(text, out var guid))
            {
                name = HostName.Normalize(text, out var error)
                    ?? throw new CliException(ExitCodes.Usage, $"'{text}' is neither a GUID ({HostGuid.TextLength} hex characters) nor a valid name: {error}");
            }

            var grpc = CommonOptions.GivenGrpc(context.Get(grpcOption));
            await using var client = CommonOptions.CreateClient(gns, grpc);
            var record = name is null
                ? await client.LookupAsync(guid, context.CancellationToken)
                : await client.LookupNameAsync(name, context.CancellationToken);
            if (record is null)
            {
                throw new CliException(ExitCodes.NotFound, $"no record for {(name is null ? guid.ToString() : $"name '{name}'")} at {CommonOptions.Describe(gns, grpc)}");
            }

            if (context.Output.Json)
            {
                context.Output.WriteJson(w => Output.WriteRecord(w, record));
            }
            else
            {
                context.Output.Rows(Output.RecordRows(record));
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static Command Reverse()
    {
        var gnsOption = CommonOptions.GnsEndPoint();
        var grpcOption = CommonOptions.GrpcAddress();
        var address = new Argument<IPAddress>("address")
        {
            Description = "An IPv4 or IPv6 address",
            CustomParser = result =>
            {
                var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
                // IPAddress.TryParse also takes legacy forms such as "1.2.3" (1.2.0.3); insist on four parts.
                if (IPAddress.TryParse(text, out var parsed) && (text.Contains(':', StringComparison.Ordinal) || text.Count(c => c == '.') == 3))
                {
                    return parsed;
                }

                result.AddError($"'{text}' is not an IP address");
                return null;
            },
        };
        var command = new Command("reverse", "List the GUIDs whose records carry an address (unverified claims; exit 2 when none)") { gnsOption, grpcOption, address };
        command.SetHandler(async context =>
        {
            var gns = context.Get(gnsOption)!;
            var ip = context.Get(address)!;
            var grpc = CommonOptions.GivenGrpc(context.Get(grpcOption));
            await using var client = CommonOptions.CreateClient(gns, grpc);
            var guids = await client.ReverseAsync(ip, context.CancellationToken);
            if (context.Output.Json)
            {
                context.Output.WriteJson(w =>
                {
                    w.WriteString("address", ip.ToString());
                    w.WriteStartArray("guids");
                    foreach (var guid in guids)
                    {
                        w.WriteStringValue(guid.ToString());
                    }

                    w.WriteEndArray();
                });
            }
            else
            {
                foreach (var guid in guids)
                {
                    context.Output.Line(guid.ToString());
                }
            }

            return guids.Count > 0 ? ExitCodes.Success : context.Output.Fail(ExitCodes.NotFound, $"no GUID carries {ip} at {CommonOptions.Describe(gns, grpc)}");
        });
        return command;
    }

    private static Command Remove()
    {
        var gnsOption = CommonOptions.GnsEndPoint();
        var grpcOption = CommonOptions.GrpcAddress();
        var keyOption = CommonOptions.KeyFile();
        var versionOption = new Option<ulong?>("--version") { Description = "Tombstone version (default: current Unix time in microseconds)", HelpName = "N" };
        var command = new Command("remove", "Remove this host's record (signed; the version becomes a tombstone)") { gnsOption, grpcOption, keyOption, versionOption };
        command.SetHandler(async context =>
        {
            var gns = context.Get(gnsOption)!;
            using var key = CommonOptions.LoadKey(context.Get(keyOption)!);
            var removal = GnsRemoval.Create(key, context.Get(versionOption) ?? CommonOptions.DefaultVersion(TimeProvider.System));
            var grpc = CommonOptions.GivenGrpc(context.Get(grpcOption));
            await using var client = CommonOptions.CreateClient(gns, grpc);
            var version = await client.RemoveAsync(removal, context.CancellationToken);
            if (context.Output.Json)
            {
                context.Output.WriteJson(w =>
                {
                    w.WriteString("guid", key.Guid.ToString());
                    w.WriteNumber("version", version);
                });
            }
            else
            {
                context.Output.Rows([("removed", key.Guid.ToString()), ("version", version.ToString(CultureInfo.InvariantCulture))]);
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static Command Watch()
    {
        var gnsOption = CommonOptions.GnsEndPoint();
        var grpcOption = CommonOptions.GrpcAddress();
        var countOption = new Option<int?>("--count") { Description = "Exit after this many events", HelpName = "N" };
        countOption.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int?>() is < 1)
            {
                result.AddError("--count must be at least 1");
            }
        });
        var targetsArgument = new Argument<string[]>("guid|name")
        {
            Description = "GUIDs or names to watch (a name is looked up once, then its GUID is watched)",
            Arity = ArgumentArity.OneOrMore,
        };
        targetsArgument.Validators.Add(result =>
        {
            foreach (var token in result.Tokens)
            {
                if (!HostGuid.TryParse(token.Value, out _) && HostName.Normalize(token.Value, out var error) is null)
                {
                    result.AddError($"'{token.Value}' is neither a GUID ({HostGuid.TextLength} hex characters) nor a valid name: {error}");
                }
            }
        });
        var command = new Command("watch", "Print the current record of each GUID or name, then every change, until Ctrl-C (or --count events)")
        {
            gnsOption, grpcOption, countOption, targetsArgument,
        };
        command.SetHandler(async context =>
        {
            var gns = context.Get(gnsOption)!;
            var count = context.Get(countOption);
            var grpc = CommonOptions.ResolveGrpc(context.Get(grpcOption), gns);
            await using var client = CommonOptions.CreateClient(gns, grpc);
            var guids = new List<HostGuid>();
            foreach (var text in context.Get(targetsArgument)!)
            {
                if (HostGuid.TryParse(text, out var guid))
                {
                    guids.Add(guid);
                    continue;
                }

                var name = HostName.Normalize(text, out _)!;
                var record = await client.LookupNameAsync(name, context.CancellationToken)
                    ?? throw new CliException(ExitCodes.NotFound, $"no record for name '{name}' at {CommonOptions.Describe(gns, grpc)}");
                guids.Add(record.Guid);
            }

            var seen = 0;
            try
            {
                await foreach (var watchEvent in client.WatchAsync(guids.Distinct().ToArray(), context.CancellationToken))
                {
                    PrintEvent(context.Output, watchEvent);
                    if (count is { } limit && ++seen >= limit)
                    {
                        break;
                    }
                }
            }
            catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
            {
                // Ctrl-C is how a watch normally ends.
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static void PrintEvent(Output output, GnsWatchEvent watchEvent)
    {
        var now = DateTimeOffset.UtcNow;
        if (output.Json)
        {
            output.WriteJson(w =>
            {
                w.WriteString("time", now.UtcDateTime);
                w.WriteString("guid", watchEvent.Guid.ToString());
                w.WriteBoolean("removed", watchEvent.Removed);
                w.WriteNumber("version", watchEvent.Version);
                if (watchEvent.Record is null)
                {
                    w.WriteNull("record");
                }
                else
                {
                    w.WriteStartObject("record");
                    Output.WriteRecord(w, watchEvent.Record);
                    w.WriteEndObject();
                }
            });
            return;
        }

        var time = now.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
        output.Line(watchEvent.Record is { } record
            ? $"{time} {watchEvent.Guid} v{watchEvent.Version}{(record.Name is null ? "" : $" name={record.Name}")} {string.Join(' ', record.Locators)}"
            : $"{time} {watchEvent.Guid} v{watchEvent.Version} removed");
    }

    private static Locator[] ParseLocators(ArgumentResult result)
    {
        var locators = new List<Locator>(result.Tokens.Count);
        foreach (var token in result.Tokens)
        {
            if (Locator.TryParse(token.Value, out var locator))
            {
                locators.Add(locator);
            }
            else
            {
                result.AddError($"--addr '{token.Value}' is not IP:PORT[/host|observed|relay]");
            }
        }

        if (locators.Count > GnsRecord.MaxLocators)
        {
            result.AddError($"at most {GnsRecord.MaxLocators} --addr options");
        }

        return [.. locators];
    }
}
