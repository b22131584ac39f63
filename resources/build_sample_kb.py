"""Regenerate the binary documents of the bundled sample knowledge base.

This is a maintainer tool, not part of the Almanac application. It writes the
PDF and DOCX files under ``resources/sample-kb/`` from text held in this
script. The generated files are committed to the repository, so nobody needs
to run this script to build, run or test Almanac; run it only after editing
the text below, and commit the regenerated files together with the change.

Requirements (not Almanac dependencies): ``fpdf2`` and ``python-docx``::

    python3 -m venv /tmp/kbgen
    /tmp/kbgen/bin/pip install fpdf2 python-docx
    /tmp/kbgen/bin/python resources/build_sample_kb.py

Output is deterministic: fixed metadata dates, a fixed PDF file identifier and
fixed ZIP timestamps in the DOCX files, so re-running the script with the same
library versions reproduces the same bytes.

The product ("Northwind Sync" by "Northwind Labs") is fictional. All text was
written for this project. The PDF uses a core font and ASCII text only, so its
text layer extracts cleanly.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

KB_DIR = Path(__file__).resolve().parent / "sample-kb"
MANUAL_PATH = KB_DIR / "manual" / "northwind-sync-user-manual.pdf"
SLA_PATH = KB_DIR / "policies" / "Service Level Agreement.docx"
AUP_PATH = KB_DIR / "policies" / "acceptable-use-policy.docx"

FIXED_DATE = datetime(2025, 5, 20, 9, 0, 0, tzinfo=UTC)
ZIP_DATE = (2025, 5, 20, 9, 0, 0)

# --------------------------------------------------------------------------
# User manual (PDF)
# --------------------------------------------------------------------------
# Each page is a list of blocks. Block kinds:
#   ("h1", title)        chapter heading, outline level 0
#   ("h2", title)        section heading, outline level 1
#   ("p", text)          paragraph
#   ("code", text)       one or more lines in a fixed-width font
#   ("bullets", [...])   bulleted list
#   ("steps", [...])     numbered list
#   ("toc", None)        table of contents (title page only)
# Every page starts on a new sheet; the script fails if a page overflows.

Block = tuple[str, object]

MANUAL_PAGES: list[list[Block]] = [
    # ---- page 1 -----------------------------------------------------------
    [
        ("title", "Northwind Sync 4.2 User Manual"),
        ("subtitle", "Desktop client for Windows, macOS and Linux"),
        ("p", "Document version 4.2-1, published 20 May 2025 by Northwind Labs."),
        ("h1", "About this manual"),
        (
            "p",
            "This manual describes the Northwind Sync desktop client, version 4.2. "
            "Northwind Sync keeps a folder on your computer in sync with your team's "
            "cloud storage and keeps earlier versions of every file, so that you can "
            "recover from mistakes. Administrators manage users, billing and security "
            "in the web admin console at https://admin.northwind-sync.example.",
        ),
        (
            "p",
            "Northwind Sync is sold in three plans: Free, Team and Business. Features "
            "that depend on the plan are marked in the text, for example "
            "(Team and Business). Single sign-on is available on the Business plan "
            "and is described in the separate administrator guide.",
        ),
        (
            "p",
            "Conventions: menu paths are written as Settings > Sync > Selective sync. "
            "Commands that you type are shown in a fixed-width font.",
        ),
        ("toc", None),
    ],
    # ---- page 2 -----------------------------------------------------------
    [
        ("h1", "1. Installing Northwind Sync"),
        (
            "p",
            "Install the desktop client on every computer that should keep a copy of "
            "your files. Each platform has its own installer; follow the section for "
            "your operating system.",
        ),
        ("h2", "1.1 Installing on Windows"),
        (
            "p",
            "Requirements: Windows 10 version 22H2 or Windows 11, 64-bit (x64 or "
            "ARM64), at least 4 GB of RAM and 500 MB of free disk space for the "
            "application itself.",
        ),
        (
            "p",
            "Per-user installation (recommended): download NorthwindSync-Setup-4.2.1.exe "
            "from the download page and double-click it. The installer does not need "
            "administrator rights and installs the client to %LOCALAPPDATA%\\NorthwindSync. "
            "When it finishes, Northwind Sync starts and shows the sign-in window.",
        ),
        (
            "p",
            "Installation for all users: IT departments can deploy the MSI package "
            "NorthwindSync-4.2.1-x64.msi. Run it from an elevated command prompt. "
            "To install silently, use:",
        ),
        ("code", "msiexec /i NorthwindSync-4.2.1-x64.msi /qn"),
        (
            "p",
            "The MSI package installs to C:\\Program Files\\Northwind Sync and starts "
            "the client at sign-in for every user of the computer.",
        ),
        (
            "p",
            "Your sync folder: by default the folder is C:\\Users\\<user name>\\Northwind Sync. "
            "You can choose another location during the first-run setup, but it must "
            "be on an NTFS volume. FAT32 and exFAT drives and network shares are not "
            "supported.",
        ),
        (
            "p",
            "Status icons in File Explorer: a green check mark means the file is "
            "synced, two blue arrows mean it is syncing, a cloud outline means it is "
            "online-only, and a red cross means there is a problem (see chapter 7).",
        ),
        (
            "p",
            "The Northwind Sync icon appears in the notification area of the taskbar. "
            "If you cannot see it, click the up arrow (Show hidden icons) next to the "
            "clock. Microsoft Defender SmartScreen may warn you the first time you run "
            "the installer; the installer is signed by Northwind Labs Ltd, which you "
            "can check on the Digital Signatures tab of the file's Properties.",
        ),
    ],
    # ---- page 3 -----------------------------------------------------------
    [
        ("h2", "1.2 Installing on macOS"),
        (
            "p",
            "Requirements: macOS 13 Ventura or later, on a Mac with Apple silicon or "
            "an Intel processor. Version 4.2 no longer supports macOS 12 Monterey; "
            "on older Macs, use client 4.1.2, which is supported until 31 December 2025.",
        ),
        (
            "p",
            "Open NorthwindSync-4.2.1.dmg and drag Northwind Sync to the Applications "
            "folder. You can also install the client with Homebrew:",
        ),
        ("code", "brew install --cask northwind-sync"),
        (
            "p",
            "On first launch, macOS asks you to allow the Northwind Sync File Provider "
            "extension. Open System Settings > General > Login Items & Extensions, "
            "click File Providers and turn on Northwind Sync. Without this step the "
            "sync folder does not appear in Finder.",
        ),
        (
            "p",
            "The sync folder is listed under Locations in the Finder sidebar. It is "
            "stored in ~/Library/CloudStorage/NorthwindSync-<account email>. Do not "
            "move or rename this folder yourself.",
        ),
        ("h2", "1.3 Installing on Linux"),
        (
            "p",
            "Requirements: 64-bit x86 (x86_64) with Ubuntu 22.04 or 24.04, Debian 12, "
            "or Fedora 40 or later. An ARM64 build is available as a preview. A "
            "graphical desktop is optional; the client can run headless.",
        ),
        ("p", "On Debian and Ubuntu, install the .deb package:"),
        ("code", "sudo apt install ./northwind-sync_4.2.1_amd64.deb"),
        ("p", "On Fedora, install the .rpm package:"),
        ("code", "sudo dnf install ./northwind-sync-4.2.1.x86_64.rpm"),
        (
            "p",
            "Other distributions can use the AppImage: make "
            "NorthwindSync-4.2.1-x86_64.AppImage executable with chmod +x and run it.",
        ),
        (
            "p",
            "The client runs as a systemd user service. To start it now and at every login, run:",
        ),
        ("code", "systemctl --user enable --now northwind-sync"),
        (
            "p",
            "The default sync folder is ~/Northwind. The command nwsync status shows "
            "what the client is doing. For more than 100,000 files, raise the inotify "
            "watch limit to 524288 (fs.inotify.max_user_watches), otherwise syncing "
            "stops with error NW-640.",
        ),
    ],
    # ---- page 4 -----------------------------------------------------------
    [
        ("h1", "2. Signing in and resetting your password"),
        ("h2", "2.1 Signing in"),
        (
            "p",
            "After installation, sign in with the email address and password of your "
            "Northwind Sync account. If your organization uses single sign-on "
            "(Business plan), click Sign in with your organization instead; the client "
            "opens your web browser to finish signing in with your identity provider.",
        ),
        (
            "p",
            "Passwords must be at least 12 characters long and must not match any of "
            "your last 5 passwords.",
        ),
        (
            "p",
            "Two-step verification: turn it on in the web console under Account > "
            "Security > Two-step verification. Northwind Sync supports authenticator "
            "apps (TOTP codes) and gives you 10 single-use backup codes. Keep the "
            "backup codes somewhere safe: support staff cannot turn off two-step "
            "verification for you.",
        ),
        (
            "p",
            "Account lockout: after 10 failed sign-in attempts in a row, the account "
            "is locked for 15 minutes and the client shows error NW-102. Resetting "
            "your password does not end the lockout sooner.",
        ),
        ("h2", "2.2 Resetting a forgotten password"),
        (
            "steps",
            [
                "In the sign-in window, click Forgot password?",
                "Enter the email address of your account and click Send reset link.",
                "Open the email from no-reply@northwind-sync.example and click Reset password.",
                "The reset link expires after 30 minutes and can be used only once.",
                "Choose a new password, then sign in again on each of your devices.",
            ],
        ),
        (
            "p",
            "You can request at most 5 reset emails per hour. If no email arrives "
            "within 10 minutes, check your spam or junk folder, then ask your "
            "administrator to check that your address is spelled correctly.",
        ),
        (
            "p",
            "When your password changes, all your other devices and browser sessions "
            "are signed out and must sign in again with the new password.",
        ),
        (
            "p",
            "Reset by an administrator (Team and Business): an administrator can send "
            "you a reset email from Admin console > Users > (select the user) > Send "
            "password reset. Links sent by an administrator are valid for 24 hours.",
        ),
        (
            "p",
            "Single sign-on accounts: if you sign in with your organization, your "
            "password is managed by your identity provider. Northwind Sync cannot "
            "reset it; use your company's password reset process or contact your IT "
            "help desk.",
        ),
    ],
    # ---- page 5 -----------------------------------------------------------
    [
        ("h1", "3. Selective sync and online-only files"),
        ("h2", "3.1 Choosing which folders to sync"),
        (
            "p",
            "Selective sync lets you choose which folders are stored on this computer. "
            "Open Settings > Sync > Selective sync, clear the check box of each folder "
            "that you do not need on this device, and click Apply.",
        ),
        (
            "p",
            "Cleared folders are removed from this computer only; they stay in the "
            "cloud and on your other devices. Before it removes a folder larger than "
            "10 GB, the client asks you to confirm.",
        ),
        (
            "p",
            "New top-level folders created by teammates are synced automatically "
            "unless you turn off Sync new folders automatically on the same page.",
        ),
        ("h2", "3.2 Online-only files"),
        (
            "p",
            "Online-only files appear in your sync folder but use no disk space until "
            "you open them. Right-click a file or folder and choose Northwind Sync > "
            "Make online-only, or Always keep on this device.",
        ),
        (
            "p",
            "Online-only files are available on Windows and macOS since version 4.0, "
            "and on Linux since version 4.2 (FUSE 3 is required on Linux).",
        ),
        (
            "p",
            "If the free space on the disk that holds your sync folder drops below "
            "1 GB, the client pauses downloads and shows error NW-611.",
        ),
        ("h2", "3.3 Files that are never synced"),
        (
            "p",
            "The following items are ignored by default: desktop.ini, Thumbs.db, "
            ".DS_Store, Office lock files whose names start with ~$, and files whose "
            "names end in .tmp.",
        ),
        (
            "p",
            "To ignore more files, create a text file named .nwignore in the root of "
            "your sync folder and add one pattern per line, for example *.iso or "
            "build/. The patterns use the same syntax as .gitignore files.",
        ),
        (
            "p",
            "Names and paths: file and folder names must not contain the characters "
            '\\ / : * ? " < > | on any platform (error NW-217). A single name can be '
            "at most 255 bytes long, and the full path inside the sync folder can be "
            "at most 400 characters long (error NW-230).",
        ),
    ],
    # ---- page 6 -----------------------------------------------------------
    [
        ("h1", "4. Sharing files and folders"),
        ("h2", "4.1 Share links"),
        (
            "p",
            "To share a file with anyone, right-click it in your sync folder and "
            "choose Northwind Sync > Copy share link. The link is copied to the "
            "clipboard and gives view-only access by default.",
        ),
        ("p", "The link options depend on your plan:"),
        (
            "bullets",
            [
                "Free: links are view-only and expire after 7 days. The expiry cannot be changed.",
                "Team: links expire after 30 days by default. You can choose any expiry "
                "up to 365 days, allow editing, and protect a link with a password.",
                "Business: the same as Team, plus a download limit of 1 to 1,000 "
                "downloads per link. Administrators can require a password on every link.",
            ],
        ),
        (
            "p",
            "To revoke a link, open the web console, go to Shared > Links and click "
            "Revoke next to the link. Revoking takes effect immediately.",
        ),
        ("h2", "4.2 Shared folders"),
        (
            "p",
            "A shared folder is synced to the devices of all its members. Right-click "
            "a folder, choose Northwind Sync > Share folder, enter email addresses, "
            "and pick a role: Viewer, Editor or Manager. Managers can invite and "
            "remove members. A shared folder can have up to 200 members.",
        ),
        (
            "p",
            "The contents of a shared folder count against the storage of the folder "
            "owner only, not against the storage of its members.",
        ),
        (
            "p",
            "If you leave a shared folder, its files are removed from your devices but "
            "stay available to the other members.",
        ),
        ("h2", "4.3 External sharing"),
        (
            "p",
            "On the Team and Business plans, administrators can block sharing with "
            "people outside the organization in Admin console > Settings > Sharing > "
            "Allow external sharing. When it is turned off, the client shows error "
            "NW-451 if you invite an address outside your organization.",
        ),
    ],
    # ---- page 7 -----------------------------------------------------------
    [
        ("h1", "5. Conflicts and version history"),
        ("h2", "5.1 How conflicts happen"),
        (
            "p",
            "A conflict occurs when the same file is changed on two devices before "
            "either change has been uploaded, for example when you edit a document on "
            "an offline laptop while a colleague edits it too. Northwind Sync never "
            "merges file contents automatically.",
        ),
        (
            "p",
            "The first change to reach the server keeps the original file name. The "
            "other change is saved next to it as a conflicted copy, named after the "
            "device and the date, for example:",
        ),
        ("code", "Budget (conflicted copy from DESKTOP-7Q2 2025-03-14).xlsx"),
        (
            "p",
            "Compare the two files, copy your changes into one of them, and delete the "
            "other. To list all conflicted copies, click the Northwind Sync icon and "
            "open Activity > Conflicts. The client reports each new conflict once with "
            "code NW-305; this is a notice, not an error.",
        ),
        ("h2", "5.2 Avoiding conflicts"),
        (
            "p",
            "Let the client finish syncing (green check mark) before you close a "
            "laptop. On the Business plan you can lock a file so that others cannot "
            "change it: right-click it and choose Northwind Sync > Lock file. A lock "
            "is released when you unlock the file, or automatically after 8 hours.",
        ),
        ("h2", "5.3 Version history and deleted files"),
        (
            "p",
            "Every time a file changes, Northwind Sync keeps the previous version. To "
            "restore one, right-click the file and choose Northwind Sync > Version "
            "history, or open the file in the web console and click Versions.",
        ),
        (
            "bullets",
            [
                "Free plan: versions are kept for 30 days.",
                "Team plan: versions are kept for 90 days.",
                "Business plan: versions are kept for 365 days.",
            ],
        ),
        (
            "p",
            "Deleted files go to Trash in the web console and can be restored for the "
            "same number of days. Restoring an old version creates a new version; it "
            "does not remove the newer ones.",
        ),
    ],
    # ---- page 8 -----------------------------------------------------------
    [
        ("h1", "6. Bandwidth and network settings"),
        ("h2", "6.1 Bandwidth limits"),
        (
            "p",
            "Open Settings > Network > Bandwidth. Download speed is unlimited by "
            "default. Upload speed is set to Automatic, which limits uploads to 75% "
            "of the measured upload capacity so that video calls and browsing stay "
            "responsive. You can also choose Limit to and enter a value in KB/s, or "
            "choose Don't limit.",
        ),
        (
            "p",
            "Northwind Sync transfers files in blocks of 4 MB. When a large file "
            "changes, only the blocks that changed are uploaded again.",
        ),
        (
            "p",
            "To pause syncing, click the Northwind Sync icon and choose Pause, then "
            "30 minutes, 1 hour, 2 hours or Until tomorrow. On Windows, syncing also "
            "pauses automatically on network connections that are set as metered.",
        ),
        ("h2", "6.2 LAN sync"),
        (
            "p",
            "LAN sync downloads files directly from other computers of your team on "
            "the same local network instead of from the internet. It is turned on by "
            "default and can be turned off in Settings > Network > LAN sync.",
        ),
        (
            "p",
            "Computers find each other on UDP port 47310 and transfer data over "
            "TCP port 47311. Allow both ports in your local firewall.",
        ),
        ("h2", "6.3 Proxies and firewalls"),
        (
            "p",
            "By default the client uses the proxy settings of the operating system, "
            "including PAC files. To set a proxy yourself, open Settings > Network > "
            "Proxy and choose HTTP or HTTPS. SOCKS proxies are not supported.",
        ),
        (
            "p",
            "If your proxy requires a user name and password, enter them in the same "
            "dialog; otherwise the client shows error NW-407.",
        ),
        (
            "p",
            "The client needs outbound HTTPS (TCP port 443) to *.northwind-sync.example. "
            "Firewalls that inspect TLS traffic must let these hosts through without "
            "inspection, or the client shows error NW-418.",
        ),
    ],
    # ---- page 9 -----------------------------------------------------------
    [
        ("h1", "7. Troubleshooting"),
        (
            "p",
            "Most problems go away when you quit and restart the client. If that does "
            "not help, reset the client as described below. Resetting signs you out "
            "and removes local settings and the sync database; it does not delete the "
            "files in your sync folder.",
        ),
        (
            "p",
            "After a reset the client indexes your files again, which takes about "
            "1 minute per 10,000 files.",
        ),
        ("h2", "7.1 Resetting the client"),
        (
            "p",
            "Windows: right-click the Northwind Sync icon in the notification area and "
            "choose Quit Northwind Sync. Press Windows+R, enter the following command "
            "and press Enter:",
        ),
        ("code", "%LOCALAPPDATA%\\NorthwindSync\\NorthwindSync.exe --reset"),
        (
            "p",
            "If you installed the MSI package, the program is in "
            "C:\\Program Files\\Northwind Sync instead.",
        ),
        (
            "p",
            "macOS: quit Northwind Sync from its menu bar icon. Then hold the Option "
            "key while you open Northwind Sync from the Applications folder, and "
            "click Reset and sign out in the dialog that appears.",
        ),
        ("p", "Linux: stop the service, reset the client, and start it again:"),
        (
            "code",
            "systemctl --user stop northwind-sync\n"
            "northwind-sync --reset\n"
            "systemctl --user start northwind-sync",
        ),
        ("h2", "7.2 Log files and diagnostics"),
        (
            "p",
            "Log files are rotated when they reach 10 MB, and the 5 most recent files "
            "are kept. The logs are stored in these folders:",
        ),
        (
            "bullets",
            [
                "Windows: %LOCALAPPDATA%\\NorthwindSync\\logs",
                "macOS: ~/Library/Logs/Northwind Sync",
                "Linux: ~/.local/state/northwind-sync/logs",
            ],
        ),
        (
            "p",
            "On Linux you can also read the log with journalctl --user -u northwind-sync. "
            "To send logs to support, choose Help > Export diagnostics. This creates a "
            "ZIP file on your desktop with logs and settings but no file contents.",
        ),
    ],
    # ---- page 10 ----------------------------------------------------------
    [
        ("h2", "7.3 Common error codes"),
        (
            "p",
            "The client shows error codes in its Activity list. The most common codes "
            "are listed below; the online troubleshooting guide lists all of them.",
        ),
        ("code", "NW-101: Session expired"),
        (
            "p",
            "Sign out and sign in again. This happens after a password change or when "
            "an administrator ends your sessions.",
        ),
        ("code", "NW-102: Account locked"),
        (
            "p",
            "The account was locked after 10 failed sign-in attempts. Wait 15 minutes, "
            "then try again.",
        ),
        ("code", "NW-204: Storage quota exceeded"),
        (
            "p",
            "Delete files, empty Trash in the web console, or ask an administrator for "
            "more storage. Uploads resume within 5 minutes after space is freed.",
        ),
        ("code", "NW-217: File name not allowed"),
        ("p", "The name contains a character that is not allowed. Rename the file."),
        ("code", "NW-305: Conflicted copy created"),
        ("p", "A notice, not an error. See chapter 5."),
        ("code", "NW-402: Cannot reach the Northwind servers"),
        (
            "p",
            "Check your internet connection and the proxy settings described in chapter 6.",
        ),
        ("h2", "7.4 Contacting support"),
        (
            "p",
            "If an error persists for more than 24 hours, contact support and attach "
            "the diagnostics ZIP file. Team customers can email "
            "support@northwind-sync.example. Business customers can also call the "
            "24/7 support line listed in the admin console.",
        ),
    ],
]


def _toc_entries() -> list[tuple[str, int, int]]:
    """Return (title, level, page) for every heading of the manual."""
    entries = []
    for page_no, page in enumerate(MANUAL_PAGES, start=1):
        for kind, value in page:
            if kind == "h1" and value != "About this manual":
                entries.append((str(value), 0, page_no))
            elif kind == "h2":
                entries.append((str(value), 1, page_no))
    return entries


def build_manual(path: Path) -> None:
    """Write the user manual PDF."""
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    class ManualPDF(FPDF):  # type: ignore[misc]
        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", size=8)
            self.set_text_color(110, 110, 110)
            self.cell(
                0,
                10,
                f"Northwind Sync 4.2 User Manual - page {self.page_no()} of {{nb}}",
                align="C",
            )
            self.set_text_color(0, 0, 0)

        def file_id(self) -> str:
            # Fixed identifier: the default one hashes the output, which is also
            # deterministic, but a constant keeps the bytes stable across
            # small fpdf2 differences in unrelated objects.
            return "<4E57534D414E55414C342E322D31303030><4E57534D414E55414C342E322D31303030>"

    pdf = ManualPDF(format="A4", unit="mm")
    pdf.set_margins(20, 18, 20)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title("Northwind Sync 4.2 User Manual")
    pdf.set_author("Northwind Labs")
    pdf.set_subject("Desktop client for Windows, macOS and Linux")
    pdf.set_keywords("Northwind Sync, user manual, installation, troubleshooting")
    pdf.set_creator("build_sample_kb.py")
    pdf.set_producer("fpdf2")
    pdf.set_lang("en")
    pdf.set_display_mode(zoom="fullwidth", layout="continuous")
    pdf.page_mode = "USE_OUTLINES"

    lh = 5.2  # body line height in mm

    def text_block(text: str, size: float = 10.5, style: str = "") -> None:
        pdf.set_font("Helvetica", style=style, size=size)
        pdf.multi_cell(0, lh, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(1.8)

    for page_no, page in enumerate(MANUAL_PAGES, start=1):
        pdf.add_page()
        for kind, value in page:
            if kind == "title":
                pdf.ln(20)
                pdf.set_font("Helvetica", style="B", size=24)
                pdf.multi_cell(0, 11, str(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(2)
            elif kind == "subtitle":
                pdf.set_font("Helvetica", size=14)
                pdf.multi_cell(0, 8, str(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(6)
            elif kind == "h1":
                pdf.start_section(str(value), level=0)
                pdf.ln(2)
                pdf.set_font("Helvetica", style="B", size=17)
                pdf.multi_cell(0, 9, str(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(3)
            elif kind == "h2":
                pdf.start_section(str(value), level=1)
                pdf.ln(1.5)
                pdf.set_font("Helvetica", style="B", size=12.5)
                pdf.multi_cell(0, 7, str(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(1)
            elif kind == "p":
                text_block(str(value))
            elif kind == "code":
                pdf.set_font("Courier", size=9.5)
                pdf.set_fill_color(240, 240, 240)
                for line in str(value).split("\n"):
                    pdf.set_x(pdf.l_margin + 4)
                    pdf.cell(
                        pdf.epw - 4,
                        lh,
                        line,
                        fill=True,
                        new_x=XPos.LMARGIN,
                        new_y=YPos.NEXT,
                    )
                pdf.ln(2.2)
            elif kind in ("bullets", "steps"):
                assert isinstance(value, list)
                pdf.set_font("Helvetica", size=10.5)
                for i, item in enumerate(value, start=1):
                    marker = "-" if kind == "bullets" else f"{i}."
                    pdf.set_x(pdf.l_margin + 3)
                    pdf.cell(6, lh, marker)
                    pdf.multi_cell(0, lh, str(item), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                    pdf.ln(0.8)
                pdf.ln(1.2)
            elif kind == "toc":
                pdf.ln(2)
                pdf.set_font("Helvetica", style="B", size=13)
                pdf.cell(0, 8, "Contents", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.set_font("Helvetica", size=10.5)
                for title, level, target in _toc_entries():
                    if level > 0:
                        continue  # chapters only; sections are in the PDF outline
                    pdf.cell(pdf.epw - 15, 6.5, title)
                    pdf.cell(15, 6.5, str(target), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            else:
                raise ValueError(f"unknown block kind {kind!r}")
        if pdf.page != page_no:
            raise RuntimeError(f"manual page {page_no} overflowed onto page {pdf.page}")

    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))


# --------------------------------------------------------------------------
# DOCX documents
# --------------------------------------------------------------------------
# Blocks: ("title", text), ("h1", text), ("h2", text), ("p", text),
#         ("bullets", [...]), ("table", (caption, [header, *rows])).

SLA_DOC: list[Block] = [
    ("title", "Northwind Sync Service Level Agreement"),
    (
        "p",
        "Version 2025-03, effective 1 March 2025. This Service Level Agreement (SLA) "
        "is part of the subscription agreement between Northwind Labs Ltd and "
        "customers of Northwind Sync.",
    ),
    ("h1", "1. Scope"),
    (
        "p",
        "This SLA applies to paid Team and Business subscriptions. The Free plan is "
        "provided without an uptime commitment or guaranteed response times; Free "
        "users can get help in the community forum.",
    ),
    (
        "p",
        "The SLA covers the Northwind Sync cloud service: file storage and sync, the "
        "web admin console, share links and single sign-on. It does not cover the "
        "desktop clients running on customer computers.",
    ),
    ("h1", "2. Service availability"),
    ("h2", "2.1 Uptime commitment"),
    (
        "p",
        "Northwind Labs commits to a Monthly Uptime Percentage of 99.9% for Business "
        "subscriptions and 99.5% for Team subscriptions. The Monthly Uptime Percentage "
        "is measured per calendar month and excludes scheduled maintenance.",
    ),
    ("h2", "2.2 Scheduled maintenance"),
    (
        "p",
        "Scheduled maintenance takes place on Sundays between 02:00 and 04:00 UTC and "
        "is announced at least 72 hours in advance on status.northwind-sync.example. "
        "Scheduled maintenance will not exceed 4 hours per calendar month.",
    ),
    ("h1", "3. Support"),
    ("h2", "3.1 Support hours and channels"),
    (
        "bullets",
        [
            "Team: email support, Monday to Friday 08:00-18:00 CET, excluding public holidays.",
            "Business: email and phone support. Severity 1 and Severity 2 cases are "
            "handled 24/7; Severity 3 and 4 cases during business hours.",
        ],
    ),
    ("h2", "3.2 Severity levels"),
    (
        "bullets",
        [
            "Severity 1 (Critical): the service is unavailable, or files cannot be "
            "accessed, for most users of the organization.",
            "Severity 2 (High): a major feature such as syncing, sharing or single "
            "sign-on is impaired, with no workaround.",
            "Severity 3 (Normal): a feature does not work as documented, but a workaround exists.",
            "Severity 4 (Low): questions, documentation issues and feature requests.",
        ],
    ),
    ("h2", "3.3 Response time targets"),
    (
        "p",
        "The response time is the time between the creation of a support case and "
        "the first reply from a support engineer (not an automatic confirmation).",
    ),
    (
        "table",
        (
            "Table 1. First response time targets per plan",
            [
                ["Severity", "Team", "Business"],
                ["Severity 1 (Critical)", "4 business hours", "1 hour (24/7)"],
                ["Severity 2 (High)", "1 business day", "4 hours (24/7)"],
                ["Severity 3 (Normal)", "2 business days", "1 business day"],
                ["Severity 4 (Low)", "5 business days", "3 business days"],
            ],
        ),
    ),
    ("h1", "4. Service credits"),
    ("h2", "4.1 Credit levels"),
    (
        "p",
        "If the Monthly Uptime Percentage falls below the commitment for your plan, "
        "you are eligible for a service credit, calculated as a percentage of the "
        "monthly subscription fee for the affected month:",
    ),
    (
        "table",
        (
            "Table 2. Service credits",
            [
                ["Monthly Uptime Percentage", "Team credit", "Business credit"],
                ["Below the commitment but at least 99.0%", "10%", "10%"],
                ["Below 99.0% but at least 95.0%", "25%", "25%"],
                ["Below 95.0%", "50%", "50%"],
            ],
        ),
    ),
    (
        "p",
        "Service credits for one month cannot exceed 50% of the monthly fee. Credits "
        "are applied to the next invoice and are never paid out in cash.",
    ),
    ("h2", "4.2 Claiming a credit"),
    (
        "p",
        "The account owner or a billing administrator must claim a credit within 30 "
        "days after the end of the affected month, in Admin console > Billing > "
        "Service credits or by email to billing@northwind-sync.example.",
    ),
    ("h1", "5. Exclusions"),
    (
        "bullets",
        [
            "Events outside the reasonable control of Northwind Labs, such as natural "
            "disasters or failures of the public internet.",
            "Problems caused by the customer's own network, proxy or firewall.",
            "Features marked as preview or beta.",
            "Accounts suspended under the Acceptable Use Policy.",
        ],
    ),
    ("h1", "6. Escalation"),
    (
        "p",
        "If a response target is missed, the customer can ask for the case to be "
        "escalated to a support manager, who replies within 2 business hours. "
        "Business organizations with more than 250 users are assigned a named "
        "technical account manager.",
    ),
]

AUP_DOC: list[Block] = [
    ("title", "Northwind Sync Acceptable Use Policy"),
    (
        "p",
        "Effective 1 March 2025. This policy applies to everyone who uses Northwind "
        "Sync, on every plan, including people who only open a share link.",
    ),
    ("h1", "1. Purpose"),
    (
        "p",
        "Northwind Sync is a file sync and backup service for small teams. This "
        "policy describes uses that are not allowed and the fair-use limits that keep "
        "the service fast and reliable for all customers.",
    ),
    ("h1", "2. Prohibited uses"),
    ("h2", "2.1 Illegal and harmful content"),
    (
        "p",
        "Do not store or share content that is illegal, that infringes the "
        "intellectual property of others, or that contains malware. Do not use share "
        "links to distribute copyrighted films, music or software without permission.",
    ),
    ("h2", "2.2 Abuse of the service"),
    (
        "bullets",
        [
            "Do not use Northwind Sync as a content delivery network or to host files "
            "for a public website.",
            "Do not create accounts automatically or share one account among several "
            "people; every person needs their own user.",
            "Do not try to get around plan limits, for example by creating many Free "
            "accounts for one team.",
        ],
    ),
    ("h2", "2.3 Security"),
    (
        "p",
        "Do not probe, scan or test the security of the service without written "
        "permission. Security researchers can report vulnerabilities to "
        "security@northwind-sync.example.",
    ),
    ("h1", "3. Fair-use limits"),
    (
        "p",
        "The following limits apply per organization. Traffic above a limit may be "
        "slowed down; it is not charged extra.",
    ),
    (
        "table",
        (
            "Table 1. Fair-use limits per plan",
            [
                ["Limit", "Free", "Team", "Business"],
                ["Share link downloads per day", "20 GB", "200 GB", "1 TB"],
                ["New share links per day", "50", "500", "2,000"],
                ["API requests per minute", "60", "300", "600"],
            ],
        ),
    ),
    ("h1", "4. Inactive Free accounts"),
    (
        "p",
        "Free accounts with no sign-in for 12 months are deleted. We email the account "
        "owner 30 days before deletion; signing in once keeps the account active.",
    ),
    ("h1", "5. Enforcement"),
    (
        "p",
        "Depending on the severity of a violation, Northwind Labs may send a warning, "
        "disable share links, suspend the account for up to 30 days, or close the "
        "account. Accounts that store illegal content are suspended immediately.",
    ),
    ("h1", "6. Reporting abuse"),
    (
        "p",
        "Report abuse, including a share link that distributes illegal content, to "
        "abuse@northwind-sync.example. Reports are acknowledged within 2 business days.",
    ),
]


def _normalize_zip(data: bytes) -> bytes:
    """Rewrite a ZIP archive with fixed timestamps and attributes."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=ZIP_DATE)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            fixed.create_system = 0
            dst.writestr(fixed, src.read(info.filename), compresslevel=9)
    return out.getvalue()


@dataclass
class DocxSpec:
    path: Path
    title: str
    subject: str
    blocks: list[Block] = field(default_factory=list)


def build_docx(spec: DocxSpec) -> None:
    """Write one DOCX document with Heading 1/2 styles and tables."""
    import docx
    from docx.enum.table import WD_TABLE_ALIGNMENT
    from docx.shared import Pt

    document = docx.Document()
    props = document.core_properties
    props.title = spec.title
    props.subject = spec.subject
    props.author = "Northwind Labs Legal"
    props.last_modified_by = "Northwind Labs Legal"
    props.keywords = "Northwind Sync; policy"
    props.comments = "Sample document for the Almanac demo knowledge base (fictional)."
    props.category = "Policy"
    props.revision = 1
    props.created = FIXED_DATE.replace(tzinfo=None)
    props.modified = FIXED_DATE.replace(tzinfo=None)
    props.last_printed = FIXED_DATE.replace(tzinfo=None)

    for kind, value in spec.blocks:
        if kind == "title":
            document.add_heading(str(value), level=0)
        elif kind == "h1":
            document.add_heading(str(value), level=1)
        elif kind == "h2":
            document.add_heading(str(value), level=2)
        elif kind == "p":
            document.add_paragraph(str(value))
        elif kind == "bullets":
            assert isinstance(value, list)
            for item in value:
                document.add_paragraph(str(item), style="List Bullet")
        elif kind == "table":
            assert isinstance(value, tuple)
            caption, rows = value
            document.add_paragraph(str(caption), style="Caption")
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            table.style = "Table Grid"
            table.alignment = WD_TABLE_ALIGNMENT.CENTER
            for r, row in enumerate(rows):
                for c, text in enumerate(row):
                    cell = table.cell(r, c)
                    cell.text = text
                    if r == 0:
                        for run in cell.paragraphs[0].runs:
                            run.bold = True
                            run.font.size = Pt(10.5)
        else:
            raise ValueError(f"unknown block kind {kind!r}")

    buffer = io.BytesIO()
    document.save(buffer)
    spec.path.parent.mkdir(parents=True, exist_ok=True)
    spec.path.write_bytes(_normalize_zip(buffer.getvalue()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.parse_args()
    build_manual(MANUAL_PATH)
    build_docx(
        DocxSpec(SLA_PATH, "Northwind Sync Service Level Agreement", "Service levels", SLA_DOC)
    )
    build_docx(
        DocxSpec(AUP_PATH, "Northwind Sync Acceptable Use Policy", "Acceptable use", AUP_DOC)
    )
    for path in (MANUAL_PATH, SLA_PATH, AUP_PATH):
        print(f"wrote {path.relative_to(KB_DIR.parent.parent)} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
