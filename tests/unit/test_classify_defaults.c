/* test_classify_defaults.c - etc/bounce-rules.conf against replies as the providers send them
 * (written from their published error references), and a check that no rule in the file is
 * left without a reply that reaches it. */
#include "test_classify_util.h"

#define RULES DROVER_SOURCE_DIR "/etc/bounce-rules.conf"

/* What Gmail and Exchange Online append to every reply: a per-message id, which normalising
 * masks (so these also check that ids do not reach the rules). */
#define GSMTP " 41be03b00d2f7-5c1a2b3c4d5si1234567a12.345 - gsmtp"
#define EOP   " [AM4PEPF00025F98.EURPRD83.prod.outlook.com 2024-05-08T09:12:33.456Z 08DC6D1A2B3C4D5E]"

struct reply_case {
	const char *provider; /* as classify_provider_of() names the MX host; NULL: none */
	const char *reply;    /* raw lines joined by "\n"; "@STATUS TEXT": local, no code */
	enum classify_category want;
};

static const struct reply_case cases[] = {
    /* ---- Drover's own failures (src/delivery, src/queue) ---- */
    {NULL, "@4.4.7 delivery time expired: queued for 5 days", CLASSIFY_MESSAGE_EXPIRED},
    {NULL, "550 4.4.7 QUEUE.Expired; message expired", CLASSIFY_MESSAGE_EXPIRED},
    {"microsoft", "550 5.4.316 Message expired, connection refused(Socket error code 10061)",
     CLASSIFY_MESSAGE_EXPIRED},
    {NULL, "@- retry timeout exceeded", CLASSIFY_MESSAGE_EXPIRED},
    {NULL, "451 4.4.1 connect to mx.example.com[192.0.2.1]:25: Connection refused",
     CLASSIFY_NO_ANSWER_FROM_HOST},
    {"gmail", "451 4.4.1 connect to gmail-smtp-in.l.google.com[142.250.102.27]:25: timed out",
     CLASSIFY_NO_ANSWER_FROM_HOST},
    {NULL, "451 4.4.2 lost connection with mx.example.com[192.0.2.1] while sending RCPT TO",
     CLASSIFY_BAD_CONNECTION},
    {NULL,
     "451 4.4.2 conversation with mx.example.com[192.0.2.1] timed out while sending the "
     "message",
     CLASSIFY_BAD_CONNECTION},
    {NULL, "421 4.4.2 mx.example.com Error: timeout exceeded", CLASSIFY_BAD_CONNECTION},
    {NULL, "451 4.4.3 DNS lookup for example.com failed: SERVFAIL", CLASSIFY_DNS_FAILURE},
    {NULL, "451 4.7.4 TLS required but not offered by mx.example.com[192.0.2.1]",
     CLASSIFY_BAD_CONNECTION},
    {NULL,
     "451 4.7.5 TLS certificate of mx.example.com[192.0.2.1] not verified: unable to get "
     "local issuer certificate",
     CLASSIFY_BAD_CONNECTION},
    {NULL, "550 5.1.2 recipient domain example.invalid not found (DNS: NXDOMAIN)",
     CLASSIFY_BAD_DOMAIN},
    {NULL, "550 5.4.4 no address for any mail exchanger of example.com", CLASSIFY_BAD_DOMAIN},

    /* ---- Gmail ---- */
    {"gmail",
     "421-4.7.28 [192.0.2.1      15] Our system has detected an unusual rate of\n"
     "421-4.7.28 unsolicited mail originating from your IP address. To protect our\n"
     "421-4.7.28 users from spam, mail sent from your IP address has been temporarily\n"
     "421-4.7.28 rate limited. Please visit\n"
     "421-4.7.28  https://support.google.com/mail/?p=UnsolicitedRateLimitError to\n"
     "421 4.7.28 review our Bulk Email Senders Guidelines." GSMTP,
     CLASSIFY_RATE_LIMITED},
    {"gmail",
     "450-4.2.1 The user you are trying to contact is receiving mail at a rate that\n"
     "450-4.2.1 prevents additional messages from being delivered. Please resend your\n"
     "450-4.2.1 message at a later point. If the user is able to receive mail at that\n"
     "450-4.2.1 time, your message will be delivered. For more information, go to\n"
     "450 4.2.1  https://support.google.com/mail/?p=ReceivingRate" GSMTP,
     CLASSIFY_RATE_LIMITED},
    {"gmail", "421 4.7.0 Try again later, closing connection. (EHLO)" GSMTP, CLASSIFY_RATE_LIMITED},
    {"gmail",
     "550-5.2.1 The email account that you tried to reach is disabled. Learn more at\n"
     "550 5.2.1  https://support.google.com/mail/?p=DisabledUser" GSMTP,
     CLASSIFY_INACTIVE_MAILBOX},
    {"gmail",
     "552-5.2.2 The recipient's inbox is out of storage space and inactive. Please\n"
     "552-5.2.2 direct the recipient to\n"
     "552 5.2.2  https://support.google.com/mail/?p=OverQuotaPerm" GSMTP,
     CLASSIFY_INACTIVE_MAILBOX},
    {"gmail",
     "550-5.7.26 This mail has been blocked because the sender is unauthenticated.\n"
     "550-5.7.26 Gmail requires all senders to authenticate with either SPF or DKIM.\n"
     "550-5.7.26 \n"
     "550-5.7.26  Authentication results:\n"
     "550-5.7.26  DKIM = did not pass\n"
     "550-5.7.26  SPF [example.com] with ip: [192.0.2.1] = did not pass\n"
     "550-5.7.26 \n"
     "550-5.7.26  For instructions on setting up authentication, go to\n"
     "550 5.7.26  https://support.google.com/mail/answer/81126#authentication" GSMTP,
     CLASSIFY_AUTH_FAILED},
    {"gmail",
     "550-5.7.26 Unauthenticated email from example.com is not accepted due to domain's\n"
     "550-5.7.26 DMARC policy. Please contact the administrator of example.com domain if\n"
     "550-5.7.26 this was a legitimate mail. To learn about the DMARC initiative, go to\n"
     "550 5.7.26  https://support.google.com/mail/?p=DmarcRejection" GSMTP,
     CLASSIFY_AUTH_FAILED},
    {"gmail",
     "421-4.7.26 This mail has been rate limited because it is unauthenticated. Gmail\n"
     "421-4.7.26 requires all senders to authenticate with either SPF or DKIM.\n"
     "421 4.7.26  https://support.google.com/mail/answer/81126#authentication" GSMTP,
     CLASSIFY_AUTH_FAILED},
    {"gmail",
     "550-5.7.25 [192.0.2.1] The IP address sending this message does not have a\n"
     "550-5.7.25 PTR record setup, or the corresponding forward DNS entry does not\n"
     "550-5.7.25 point to the sending IP. As a policy, Gmail does not accept messages\n"
     "550-5.7.25 from IPs with missing PTR records. For more information, go to\n"
     "550 5.7.25  https://support.google.com/mail/answer/81126#ip-practices" GSMTP,
     CLASSIFY_POLICY_RELATED},
    {"gmail",
     "550-5.7.1 [192.0.2.1      12] Our system has detected that this message is\n"
     "550-5.7.1 likely unsolicited mail. To reduce the amount of spam sent to Gmail,\n"
     "550-5.7.1 this message has been blocked. For more information, go to\n"
     "550 5.7.1  https://support.google.com/mail/?p=UnsolicitedMessageError" GSMTP,
     CLASSIFY_SPAM_RELATED},
    {"gmail",
     "550-5.7.28 [192.0.2.1      15] Our system has detected an unusual rate of\n"
     "550-5.7.28 unsolicited mail originating from your IP address. To protect our\n"
     "550-5.7.28 users from spam, mail sent from your IP address has been blocked.\n"
     "550-5.7.28 Please visit\n"
     "550-5.7.28  https://support.google.com/mail/?p=UnsolicitedIPError to review our\n"
     "550 5.7.28 Bulk Email Senders Guidelines." GSMTP,
     CLASSIFY_SPAM_RELATED},
    {"gmail",
     "552-5.7.0 This message was blocked because its content presents a potential\n"
     "552-5.7.0 security issue. Please visit\n"
     "552-5.7.0  https://support.google.com/mail/?p=BlockedMessage to review our\n"
     "552 5.7.0 message content and attachment content guidelines." GSMTP,
     CLASSIFY_VIRUS_RELATED},
    {"gmail",
     "550-5.7.1 [192.0.2.1] The IP you're using to send mail is not authorized to\n"
     "550-5.7.1 send email directly to our servers. Please use the SMTP relay at your\n"
     "550-5.7.1 service provider instead. For more information, go to\n"
     "550 5.7.1  https://support.google.com/mail/?p=NotAuthorizedError" GSMTP,
     CLASSIFY_POLICY_RELATED},
    {"gmail",
     "451-4.3.0 Multiple destination domains per transaction is unsupported. Please\n"
     "451 4.3.0 try again." GSMTP,
     CLASSIFY_PROTOCOL_ERRORS},
    {"gmail",
     "550-5.7.1 [192.0.2.1] Our system has detected that this message is not RFC\n"
     "550-5.7.1 5322 compliant:\n"
     "550-5.7.1 'From' header is missing.\n"
     "550-5.7.1 To reduce the amount of spam sent to Gmail, this message has been\n"
     "550-5.7.1 blocked. For more information, go to\n"
     "550 5.7.1  https://support.google.com/mail/?p=RfcMessageNonCompliant" GSMTP,
     CLASSIFY_CONTENT_RELATED},
    {"gmail",
     "550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
     "550-5.1.1 double-checking the recipient's email address for typos or\n"
     "550-5.1.1 unnecessary spaces. For more information, go to\n"
     "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser" GSMTP,
     CLASSIFY_BAD_MAILBOX},
    {"gmail",
     "452-4.2.2 The email account that you tried to reach is over quota. Please direct\n"
     "452-4.2.2 the recipient to\n"
     "452 4.2.2  https://support.google.com/mail/?p=OverQuotaTemp" GSMTP,
     CLASSIFY_QUOTA_ISSUES},
    {"gmail",
     "552-5.2.2 The recipient's inbox is out of storage space. Please direct the\n"
     "552-5.2.2 recipient to\n"
     "552 5.2.2  https://support.google.com/mail/?p=OverQuotaPerm" GSMTP,
     CLASSIFY_QUOTA_ISSUES},
    {"gmail",
     "552-5.2.3 Your message exceeded Google's message size limits. For more\n"
     "552-5.2.3 information, go to\n"
     "552 5.2.3  https://support.google.com/mail/?p=MaxSizeError" GSMTP,
     CLASSIFY_CONTENT_RELATED},
    {"gmail",
     "554-5.6.0 Mail message is malformed. Not accepted. For more information, go to\n"
     "554 5.6.0  https://support.google.com/mail/?p=RfcMessageNonCompliant" GSMTP,
     CLASSIFY_CONTENT_RELATED},
    {"gmail",
     "553-5.1.2 The recipient address <someone@example.invalid> is not a valid RFC\n"
     "553-5.1.2 5321 address. For more information, go to\n"
     "553 5.1.2  https://support.google.com/a/answer/3221692" GSMTP,
     CLASSIFY_BAD_DOMAIN},
    {"gmail", "421 4.3.0 Temporary System Problem.  Try again later (10)." GSMTP, CLASSIFY_OTHER},

    /* ---- Microsoft: Outlook.com, Hotmail, Exchange Online, Exchange ---- */
    {"microsoft",
     "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP "
     "reputation. For e-mail delivery information, see https://postmaster.live.com (S775) "
     "[Name=Protocol Filter Agent][AGT=PFA][MxId=11BA123456789ABC]" EOP,
     CLASSIFY_RATE_LIMITED},
    {"microsoft",
     "451 4.7.500 Server busy. Please try again later from [192.0.2.1]. (S77714) For more "
     "information please go to http://go.microsoft.com/fwlink/?LinkId=526653" EOP,
     CLASSIFY_RATE_LIMITED},
    {"microsoft",
     "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your "
     "Internet service provider since part of their network is on our block list (S3150). "
     "You can also refer your provider to "
     "http://mail.live.com/mail/troubleshooting.aspx#errors." EOP,
     CLASSIFY_SPAM_RELATED},
    {"microsoft",
     "550 5.7.606 Access denied, banned sending IP [192.0.2.1]. To request removal from this "
     "list please visit https://sender.office.com/ and follow the directions. For more "
     "information please go to http://go.microsoft.com/fwlink/?LinkID=526655 AS(1430)" EOP,
     CLASSIFY_SPAM_RELATED},
    {"microsoft",
     "550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP. For "
     "more information please go to http://go.microsoft.com/fwlink/?LinkId=526653 AS(7124)" EOP,
     CLASSIFY_SPAM_RELATED},
    {"microsoft",
     "550 5.4.1 Recipient address rejected: Access denied. For more information see "
     "https://aka.ms/EXOSmtpErrors AS(201806281)" EOP,
     CLASSIFY_BAD_MAILBOX},
    {"microsoft",
     "550 5.7.515 Access denied, sending domain [example.com] does not meet the required "
     "authentication level. The sender's domain in the 5322.From address doesn't meet the "
     "authentication requirements defined for the sender. To learn more, see "
     "https://go.microsoft.com/fwlink/?linkid=2303602" EOP,
     CLASSIFY_AUTH_FAILED},
    {"microsoft",
     "550 5.7.520 Access denied, Your organization does not allow external forwarding. Please "
     "contact your administrator for further assistance. AS(7555)" EOP,
     CLASSIFY_POLICY_RELATED},
    {"microsoft", "550 5.5.0 Requested action not taken: mailbox unavailable." EOP,
     CLASSIFY_BAD_MAILBOX},
    {"microsoft",
     "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient someone@example.com not found by "
     "SMTP address lookup",
     CLASSIFY_BAD_MAILBOX},
    {"microsoft",
     "554 5.2.2 mailbox full; "
     "STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded; "
     "Failed to process message due to a permanent exception",
     CLASSIFY_QUOTA_ISSUES},
    {"microsoft",
     "550 5.7.509 Access denied, sending domain example.com does not pass DMARC verification "
     "and has a DMARC policy of reject." EOP,
     CLASSIFY_AUTH_FAILED},
    {"microsoft",
     "550 5.7.23 The message was rejected because of Sender Policy Framework violation",
     CLASSIFY_AUTH_FAILED},
    {"microsoft", "550 5.7.64 TenantAttribution; Relay Access Denied" EOP,
     CLASSIFY_RELAYING_ISSUES},
    {"microsoft",
     "550 5.7.350 Remote server returned message detected as spam -> 554 5.7.1 Spam message "
     "rejected",
     CLASSIFY_SPAM_RELATED},
    {"microsoft",
     "550 5.7.1 Service unavailable, Client host [192.0.2.1] blocked using Spamhaus. To "
     "request removal from this list see https://www.spamhaus.org/query/ip/192.0.2.1 "
     "AS(1450)" EOP,
     CLASSIFY_SPAM_RELATED},
    {"microsoft", "550 5.4.310 DNS domain example.com does not exist" EOP, CLASSIFY_BAD_DOMAIN},
    {NULL, "554 5.4.14 Hop count exceeded - possible mail loop ATTR34", CLASSIFY_ROUTING_ERRORS},
    {NULL, "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain",
     CLASSIFY_RELAYING_ISSUES},
    {NULL, "552 5.3.4 Message size exceeds fixed maximum message size", CLASSIFY_CONTENT_RELATED},
    {NULL, "554 5.4.4 SMTPSEND.DNS.NonExistentDomain; nonexistent domain", CLASSIFY_BAD_DOMAIN},
    {NULL, "451 4.4.0 DNS query failed. The error was: DNS query failed with error ErrorRetry",
     CLASSIFY_DNS_FAILURE},
    {NULL,
     "451 4.4.0 Primary target IP address responded with: \"421 4.4.2 Connection dropped due "
     "to SocketError.\" Attempted failover to alternate host, but that did not succeed.",
     CLASSIFY_BAD_CONNECTION},
    {NULL, "550 5.2.1 Mailbox cannot be accessed", CLASSIFY_INACTIVE_MAILBOX},
    {NULL, "550 5.7.1 RESOLVER.RST.AuthRequired; authentication required",
     CLASSIFY_RELAYING_ISSUES},
    {NULL, "550 5.7.1 Client does not have permissions to send as this sender",
     CLASSIFY_POLICY_RELATED},
    {NULL, "451 5.7.3 STARTTLS is required to send mail", CLASSIFY_POLICY_RELATED},
    {NULL, "554 5.6.1 Body type not supported by Remote Host", CLASSIFY_CONTENT_RELATED},
    {NULL, "550 5.7.1 Delivery not authorized, message refused", CLASSIFY_POLICY_RELATED},

    /* ---- Yahoo, AOL ---- */
    {"yahoo",
     "421 4.7.0 [TSS09] All messages from 192.0.2.1 will be permanently deferred; Retrying "
     "will NOT succeed. See https://postmaster.yahooinc.com/error-codes",
     CLASSIFY_SPAM_RELATED},
    {"yahoo",
     "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected "
     "volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
     CLASSIFY_RATE_LIMITED},
    {"yahoo",
     "421 4.7.0 [TS01] Messages from 192.0.2.1 temporarily deferred due to user complaints - "
     "4.16.55.1; see https://help.yahoo.com/kb/postmaster/SLN3434.html",
     CLASSIFY_RATE_LIMITED},
    {"yahoo", "421 Max message per connection reached, closing transmission channel",
     CLASSIFY_RATE_LIMITED},
    {"yahoo",
     "554 delivery error: dd This user doesn't have a yahoo.com account (someone@yahoo.com) "
     "[0] - mta1147.mail.ir2.yahoo.com",
     CLASSIFY_BAD_MAILBOX},
    {"yahoo",
     "554 5.7.9 Message not accepted for policy reasons.  See "
     "https://postmaster.yahooinc.com/error-codes",
     CLASSIFY_POLICY_RELATED},
    {"yahoo",
     "550 5.7.9 This mail has been blocked because the sender is unauthenticated. Yahoo "
     "requires all senders to authenticate with either SPF or DKIM.",
     CLASSIFY_AUTH_FAILED},
    {"yahoo",
     "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.1, because the ip is in "
     "Spamhaus's list; see https://postmaster.yahooinc.com/error-codes",
     CLASSIFY_SPAM_RELATED},
    {"yahoo",
     "554 delivery error: dd Sorry your message to someone@yahoo.com cannot be delivered. "
     "This mailbox is disabled (554.30). - mta1100.mail.gq1.yahoo.com",
     CLASSIFY_INACTIVE_MAILBOX},
    {"yahoo",
     "554 delivery error: dd Sorry your message to someone@aol.com cannot be delivered. This "
     "account has been disabled or discontinued [#102]. - mta1234.mail.ne1.aol.com",
     CLASSIFY_INACTIVE_MAILBOX},

    /* ---- Apple iCloud ---- */
    {"icloud",
     "550 5.7.1 [CS01] Message rejected due to local policy. Please visit "
     "https://support.apple.com/en-us/HT204137",
     CLASSIFY_SPAM_RELATED},
    {"icloud",
     "554 5.7.1 [HM08] Message rejected due to local policy. Please visit "
     "https://support.apple.com/en-us/HT204137",
     CLASSIFY_SPAM_RELATED},
    {"icloud", "451 4.7.1 Service unavailable - try again later", CLASSIFY_RATE_LIMITED},
    {"icloud",
     "421 4.7.1 Messages to someone@icloud.com deferred due to excessive volume. Try again "
     "later - https://support.apple.com/en-us/HT204137",
     CLASSIFY_RATE_LIMITED},
    {"icloud", "550 5.1.1 <someone@icloud.com>: user does not exist", CLASSIFY_BAD_MAILBOX},
    {"icloud", "550 5.1.1 unknown or illegal alias: someone@icloud.com", CLASSIFY_BAD_MAILBOX},
    {"icloud",
     "550 5.7.1 Your message was rejected due to example.com DMARC policy. Please visit "
     "https://support.apple.com/en-us/HT204137",
     CLASSIFY_AUTH_FAILED},
    {"icloud",
     "550 5.7.1 Your email was rejected due to having a domain present in the Spamhaus DBL "
     "-- see https://www.spamhaus.org/dbl/",
     CLASSIFY_SPAM_RELATED},
    {"icloud", "554 5.7.0 Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.1",
     CLASSIFY_SPAM_RELATED},
    {"icloud", "421 4.7.0 me.com Error: too many errors", CLASSIFY_PROTOCOL_ERRORS},

    /* ---- Comcast ---- */
    {"comcast",
     "554 resimta-ch2-05v.sys.comcast.net resimta-ch2-05v.sys.comcast.net 192.0.2.1 found on "
     "one or more DNSBLs, see http://postmaster.comcast.net/smtp-error-codes.php#BL000001",
     CLASSIFY_SPAM_RELATED},
    {"comcast",
     "554 resimta-po-22v.sys.comcast.net comcast 192.0.2.1 Comcast block for spam. Please see "
     "http://postmaster.comcast.net/smtp-error-codes.php#BL000000",
     CLASSIFY_SPAM_RELATED},
    {"comcast", "550 5.1.1 <someone@comcast.net> Not our Customer", CLASSIFY_BAD_MAILBOX},
    {"comcast",
     "421 resimta-po-23v.sys.comcast.net Too many sessions opened, see "
     "https://postmaster.comcast.net/smtp-error-codes.php#RL000001",
     CLASSIFY_RATE_LIMITED},
    {"comcast",
     "554 resimta-ch2-14v.sys.comcast.net comcast 192.0.2.1 Comcast requires that all mail "
     "servers must have a PTR record with a valid Reverse DNS entry. Learn more at "
     "http://postmaster.comcast.net/smtp-error-codes.php#RF000001",
     CLASSIFY_POLICY_RELATED},

    /* ---- GMX, WEB.DE ---- */
    {"gmx",
     "554-Transaction failed\n"
     "554-Reject due to policy restrictions.\n"
     "554 For explanation visit "
     "https://postmaster.gmx.net/en/case?c=hi&i=ip&v=192.0.2.1&r=1MNcgj-1ue23t3pyV-00S2YR",
     CLASSIFY_POLICY_RELATED},
    {"gmx",
     "554-gmx.net (mxgmx104) Nemesis ESMTP Service not available\n"
     "554-No SMTP service\n"
     "554-IP address is block listed.\n"
     "554 For explanation visit "
     "https://postmaster.gmx.net/en/case?c=r0201&i=ip&v=198.51.100.42&r=1MNcgj-1ue23t3pyV-"
     "00S2YR",
     CLASSIFY_SPAM_RELATED},
    {"gmx", "550 Requested action not taken: mailbox unavailable", CLASSIFY_BAD_MAILBOX},
    {"gmx",
     "550 <someone@gmx.de>: Reject due to SPF policy. The originating IP of the message is not "
     "permitted by the domain owner",
     CLASSIFY_AUTH_FAILED},
    {"gmx", "421 Rate limit reached. Please try again later", CLASSIFY_RATE_LIMITED},
    {"gmx", "552 Requested mail action aborted: exceeded storage allocation",
     CLASSIFY_QUOTA_ISSUES},

    /* ---- Orange, Wanadoo ---- */
    {"orange",
     "421 mwinf5c10 ME Service refuse. Veuillez essayer plus tard. Service refused, please try "
     "later. OFR_999 [999]",
     CLASSIFY_RATE_LIMITED},
    {"orange",
     "421 mwinf5c79 ME Trop de connexions, veuillez verifier votre configuration. Too many "
     "connections, slow down. OFR004_104 [104]",
     CLASSIFY_RATE_LIMITED},
    {"orange",
     "550 5.1.1 <someone@orange.fr>: Adresse d au moins un destinataire invalide. Invalid "
     "recipient. OFR_416 [416]",
     CLASSIFY_BAD_MAILBOX},
    {"orange",
     "552 5.1.1 <someone@orange.fr>: Boite du destinataire pleine. Recipient mailbox full. "
     "OFR_417 [417]",
     CLASSIFY_QUOTA_ISSUES},

    /* ---- Mimecast ---- */
    {"mimecast",
     "451 Internal resource temporarily unavailable - "
     "https://community.mimecast.com/docs/DOC-1369#451",
     CLASSIFY_POLICY_RELATED},
    {"mimecast",
     "550 Rejected by header based Anti-Spoofing policy: someone@example.com - "
     "https://community.mimecast.com/docs/DOC-1369#550 [jaKFnE5tMoOULKjU3v_6Fw.us263]",
     CLASSIFY_POLICY_RELATED},
    {"mimecast",
     "550 Envelope blocked - User Entry - https://community.mimecast.com/docs/DOC-1369#550 "
     "[Sx2kF9PnOamn0D3hFkAfZg.uk194]",
     CLASSIFY_POLICY_RELATED},
    {"mimecast",
     "550 Invalid Recipient - https://community.mimecast.com/docs/DOC-1369#550 "
     "[Sx2kF9PnOamn0D3hFkAfZg.uk194]",
     CLASSIFY_BAD_MAILBOX},

    /* ---- Proofpoint ---- */
    {"proofpoint", "554 5.7.0 Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.1",
     CLASSIFY_SPAM_RELATED},
    {"proofpoint",
     "553 5.7.1 Blocked - see https://support.proofpoint.com/dnsbl-lookup.cgi?ip=192.0.2.1",
     CLASSIFY_SPAM_RELATED},
    {"proofpoint", "550 5.1.1 User Unknown", CLASSIFY_BAD_MAILBOX},

    /* ---- Barracuda ---- */
    {"barracuda", "550 permanent failure for one or more recipients (someone@example.com:blocked)",
     CLASSIFY_SPAM_RELATED},
    {"barracuda", "554 5.7.1 Message content rejected, UBE, id=12345-02-1", CLASSIFY_SPAM_RELATED},
    {"barracuda",
     "554 Service unavailable; Client host [192.0.2.1] blocked using Barracuda Reputation; "
     "https://www.barracudanetworks.com/reputation/?pr=1&ip=192.0.2.1",
     CLASSIFY_SPAM_RELATED},

    /* ---- Postfix, Exim, Sendmail, filters ---- */
    {NULL, "550 This message contains a virus (Eicar-Test-Signature).", CLASSIFY_VIRUS_RELATED},
    {NULL, "550 This message contains malware (Eicar-Test-Signature)", CLASSIFY_VIRUS_RELATED},
    {NULL, "554 5.7.0 Reject, id=12345-01 - INFECTED: Eicar-Signature", CLASSIFY_VIRUS_RELATED},
    {NULL,
     "550 5.7.1 <someone@example.com>: Recipient address rejected: Message rejected due to: "
     "SPF fail - not authorized. Please see "
     "http://www.openspf.net/Why?s=mfrom;id=sender@example.org;ip=192.0.2.1;r=<UNKNOWN>",
     CLASSIFY_AUTH_FAILED},
    {NULL, "550 5.7.1 rejected by DMARC policy for example.org", CLASSIFY_AUTH_FAILED},
    {NULL,
     "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org; "
     "https://www.spamhaus.org/query/ip/192.0.2.1",
     CLASSIFY_SPAM_RELATED},
    {NULL, "550 rejected because 192.0.2.1 is in a black list at zen.spamhaus.org",
     CLASSIFY_SPAM_RELATED},
    {NULL, "550 5.7.1 Rejected: 192.0.2.1 listed at bl.spamcop.net", CLASSIFY_SPAM_RELATED},
    {NULL, "554 5.7.1 Spam message rejected", CLASSIFY_SPAM_RELATED},
    {NULL, "550 The mail server detected your message as spam and has prevented delivery.",
     CLASSIFY_SPAM_RELATED},
    {NULL, "421 4.7.0 mx.example.com Error: too many connections from 192.0.2.1",
     CLASSIFY_RATE_LIMITED},
    {NULL, "450 4.7.1 Error: too much mail from 192.0.2.1", CLASSIFY_RATE_LIMITED},
    {NULL, "421 Too many concurrent SMTP connections from this IP address; please try again later.",
     CLASSIFY_RATE_LIMITED},
    {NULL, "421 4.3.2 Connection rate limit exceeded.", CLASSIFY_RATE_LIMITED},
    {NULL,
     "450 4.2.0 <someone@example.com>: Recipient address rejected: Greylisted, see "
     "http://postgrey.schweikert.ch/help/example.com.html",
     CLASSIFY_POLICY_RELATED},
    {NULL, "451 4.7.1 Greylisting in action, please come back later", CLASSIFY_POLICY_RELATED},
    {NULL, "530 5.7.0 Must issue a STARTTLS command first", CLASSIFY_POLICY_RELATED},
    {NULL, "450 4.7.1 Client host rejected: cannot find your hostname, [192.0.2.1]",
     CLASSIFY_POLICY_RELATED},
    {NULL, "450 4.7.25 Client host rejected: cannot find your reverse hostname, [192.0.2.1]",
     CLASSIFY_POLICY_RELATED},
    {NULL, "554 5.7.1 <someone@example.com>: Relay access denied", CLASSIFY_RELAYING_ISSUES},
    {NULL, "550 5.7.1 <someone@example.com>... Relaying denied. IP name lookup failed [192.0.2.1]",
     CLASSIFY_RELAYING_ISSUES},
    {NULL, "550 relay not permitted", CLASSIFY_RELAYING_ISSUES},
    {NULL, "530 5.7.0 Authentication required", CLASSIFY_RELAYING_ISSUES},
    {NULL, "551 User not local; please try <someone@example.net>", CLASSIFY_RELAYING_ISSUES},
    {NULL, "552 5.3.4 Message size exceeds fixed limit", CLASSIFY_CONTENT_RELATED},
    {NULL, "552 Message size exceeds maximum permitted", CLASSIFY_CONTENT_RELATED},
    {NULL, "552 5.2.3 Message size exceeds maximum value", CLASSIFY_CONTENT_RELATED},
    {NULL, "452 4.2.2 Mailbox full", CLASSIFY_QUOTA_ISSUES},
    {NULL, "552 5.2.2 <someone@example.com>... Mailbox full", CLASSIFY_QUOTA_ISSUES},
    {NULL, "550 Mailbox quota exceeded", CLASSIFY_QUOTA_ISSUES},
    {NULL, "552 5.2.2 <someone@example.com>: Quota exceeded (mailbox for user is full)",
     CLASSIFY_QUOTA_ISSUES},
    {NULL, "550 5.2.1 <someone@example.com>... Mailbox disabled for this recipient",
     CLASSIFY_INACTIVE_MAILBOX},
    {NULL, "450 4.1.8 <sender@example.org>: Sender address rejected: Domain not found",
     CLASSIFY_DNS_FAILURE},
    {NULL,
     "553 5.1.8 <sender@example.org>... Domain of sender address sender@example.org does not "
     "exist",
     CLASSIFY_DNS_FAILURE},
    {NULL,
     "550-Verification failed for <sender@example.org>\n"
     "550-Unrouteable address\n"
     "550 Sender verify failed",
     CLASSIFY_POLICY_RELATED},
    {NULL,
     "450 4.1.7 <sender@example.org>: Sender address rejected: unverified address: host "
     "mx.example.org[192.0.2.1] said: 550 5.1.1 <sender@example.org>: Recipient address "
     "rejected: User unknown in local recipient table (in reply to RCPT TO command)",
     CLASSIFY_POLICY_RELATED},
    {NULL, "450 4.1.2 <someone@example.com>: Recipient address rejected: Domain not found",
     CLASSIFY_BAD_DOMAIN},
    {NULL,
     "556 5.1.10 <someone@example.com>: Recipient address rejected: Domain example.com does "
     "not accept mail (nullMX)",
     CLASSIFY_BAD_DOMAIN},
    {NULL,
     "@- Host or domain name not found. Name service error for name=example.com type=A: Host "
     "not found",
     CLASSIFY_BAD_DOMAIN},
    {NULL, "550 Unrouteable address", CLASSIFY_ROUTING_ERRORS},
    {NULL, "554 5.4.6 mail for example.com loops back to myself", CLASSIFY_ROUTING_ERRORS},
    {NULL, "554 5.4.0 Error: too many hops", CLASSIFY_ROUTING_ERRORS},
    {NULL,
     "550 5.1.1 <someone@example.com>: Recipient address rejected: User unknown in local "
     "recipient table",
     CLASSIFY_BAD_MAILBOX},
    {NULL,
     "550 5.1.1 <someone@example.com>: Recipient address rejected: User unknown in virtual "
     "mailbox table",
     CLASSIFY_BAD_MAILBOX},
    {NULL, "550 5.1.1 <someone@example.com>... User unknown", CLASSIFY_BAD_MAILBOX},
    {NULL, "550 No Such User Here", CLASSIFY_BAD_MAILBOX},
    {NULL, "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found", CLASSIFY_BAD_MAILBOX},
    {NULL, "550 5.1.1 <someone@example.com> User doesn't exist: someone@example.com",
     CLASSIFY_BAD_MAILBOX},
    {NULL, "503 5.5.1 Error: need RCPT command", CLASSIFY_PROTOCOL_ERRORS},
    {NULL, "500 5.5.2 Error: command not recognized", CLASSIFY_PROTOCOL_ERRORS},
    {NULL, "554 SMTP synchronization error", CLASSIFY_PROTOCOL_ERRORS},
    {NULL, "501 5.5.4 Syntax: MAIL FROM:<address>", CLASSIFY_PROTOCOL_ERRORS},
    {NULL, "502 5.5.1 Error: command not implemented", CLASSIFY_PROTOCOL_ERRORS},
    {NULL, "550 Administrative prohibition", CLASSIFY_POLICY_RELATED},
    {NULL, "554 5.7.1 <someone@example.com>: Recipient address rejected: Access denied",
     CLASSIFY_POLICY_RELATED},
    {NULL, "452 4.3.1 Insufficient system storage", CLASSIFY_OTHER},

    /* ---- The enhanced status alone ---- */
    {NULL, "550 5.1.1 <someone@libero.it> recipient rejected", CLASSIFY_BAD_MAILBOX},
    {NULL, "501 5.1.3 Bad recipient address syntax", CLASSIFY_BAD_MAILBOX},
    {NULL, "554 5.1.2 Bad destination system address", CLASSIFY_BAD_DOMAIN},
    {NULL, "552 5.2.2 <someone@example.de>: Postfach voll", CLASSIFY_QUOTA_ISSUES},
    {NULL, "554 5.4.4 [internal] Unable to route", CLASSIFY_ROUTING_ERRORS},
    {NULL, "555 5.5.4 Unsupported option: SMTPUTF8", CLASSIFY_PROTOCOL_ERRORS},
    {NULL, "550 5.7.1 Command rejected", CLASSIFY_POLICY_RELATED},
};

static struct classify_table *
defaults(size_t cache)
{
	char err[1024];
	struct classify_table *t = classify_load(RULES, cache, err, sizeof(err));

	if (t == NULL)
		fail_msg("%s", err);
	return t;
}

/* Every case gets its category, and every rule in the file is reached by at least one case:
 * a rule added without a reply to prove it fails here, with its line. */
static void
test_every_reply_and_every_rule(void **state)
{
	struct classify_table *t = defaults(0);
	size_t nrules = classify_rule_count(t);
	unsigned *hits = xcalloc(nrules, sizeof(*hits));
	char missing[2048] = "";
	int failures = 0;

	assert_true(nrules > 50);
	for (size_t i = 0; i < nitems(cases); i++) {
		struct classify_result res;

		classify_raw(t, cases[i].provider, cases[i].reply, &res);
		if (res.category != cases[i].want) {
			print_error("case %zu (%s): got %s (line %u), want %s\n  %s\n", i,
			            cases[i].provider ? cases[i].provider : "-",
			            classify_category_name(res.category), res.line,
			            classify_category_name(cases[i].want), cases[i].reply);
			failures++;
		}
		if (res.rule >= 0)
			hits[res.rule]++;
	}
	for (size_t r = 0; r < nrules; r++) {
		if (hits[r] == 0) {
			size_t len = strlen(missing);

			snprintf(missing + len, sizeof(missing) - len, " %u",
			         classify_rule_line(t, r));
		}
	}
	free(hits);
	classify_unref(t);
	if (failures > 0)
		fail_msg("%d replies misclassified", failures);
	if (missing[0] != '\0')
		fail_msg("rules without a test reply, at lines of etc/bounce-rules.conf:%s",
		         missing);
}

/* The same answers through the cache, twice over: the second pass is all hits. */
static void
test_cached_answers_agree(void **state)
{
	struct classify_table *t = defaults(CLASSIFY_DEF_CACHE_ENTRIES);
	struct classify_table *plain = defaults(0);
	struct classify_stats st;

	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < nitems(cases); i++) {
			struct classify_result a, b;

			classify_raw(t, cases[i].provider, cases[i].reply, &a);
			classify_raw(plain, cases[i].provider, cases[i].reply, &b);
			assert_int_equal(a.category, b.category);
			assert_int_equal(a.rule, b.rule);
			if (pass == 1)
				assert_true(a.cached);
		}
	}
	classify_stats(t, &st);
	assert_int_equal(st.hits + st.misses, 2 * nitems(cases));
	assert_true(st.hits >= nitems(cases));
	classify_unref(plain);
	classify_unref(t);
}

static void
test_providers_of_real_mx_hosts(void **state)
{
	struct classify_table *t = defaults(0);
	static const struct {
		const char *name, *provider;
	} hosts[] = {
	    {"gmail-smtp-in.l.google.com", "gmail"},
	    {"alt4.aspmx.l.google.com.", "gmail"},
	    {"gmail.com", "gmail"},
	    {"hotmail-com.olc.protection.outlook.com", "microsoft"},
	    {"example-com.mail.protection.outlook.com", "microsoft"},
	    {"hotmail.com", "microsoft"},
	    {"mta7.am0.yahoodns.net", "yahoo"},
	    {"mx-aol.mail.gm0.yahoodns.net", "yahoo"},
	    {"aol.com", "yahoo"},
	    {"mx01.mail.icloud.com", "icloud"},
	    {"me.com", "icloud"},
	    {"mx1a1.comcast.net", "comcast"},
	    {"mx00.emig.gmx.net", "gmx"},
	    {"mx-ha03.web.de", "gmx"},
	    {"smtp-in.orange.fr", "orange"},
	    {"wanadoo.fr", "orange"},
	    {"eu-smtp-inbound-1.mimecast.com", "mimecast"},
	    {"mx0a-001b2d01.pphosted.com", "proofpoint"},
	    {"d123456a.ess.barracudanetworks.com", "barracuda"},
	    {"MX.EXAMPLE.COM", NULL},
	    {"notgoogle.com", NULL},
	    {"sub.hotmail.com", NULL}, /* a domain entry is exact, not a suffix */
	};

	for (size_t i = 0; i < nitems(hosts); i++) {
		const char *p = classify_provider_of(t, hosts[i].name);

		if (hosts[i].provider == NULL ? p != NULL
		                              : (p == NULL || strcmp(p, hosts[i].provider) != 0))
			fail_msg("%s: got %s, want %s", hosts[i].name, p ? p : "(none)",
			         hosts[i].provider ? hosts[i].provider : "(none)");
	}
	classify_unref(t);
}

/* The file's decisions on top of the built-in defaults. */
static void
test_default_decisions(void **state)
{
	struct classify_table *t = defaults(0);
	unsigned line;

	assert_int_equal(classify_decide(t, "gmail", CLASSIFY_BAD_MAILBOX, 550, &line),
	                 CLASSIFY_SUPPRESS);
	assert_int_equal(line, 0);
	assert_int_equal(classify_decide(t, NULL, CLASSIFY_BAD_DOMAIN, 550, NULL),
	                 CLASSIFY_SUPPRESS);
	assert_int_equal(classify_decide(t, NULL, CLASSIFY_INACTIVE_MAILBOX, 554, NULL),
	                 CLASSIFY_SUPPRESS);
	assert_int_equal(classify_decide(t, NULL, CLASSIFY_QUOTA_ISSUES, 452, NULL),
	                 CLASSIFY_TRANSIENT);
	assert_int_equal(classify_decide(t, NULL, CLASSIFY_QUOTA_ISSUES, 552, NULL),
	                 CLASSIFY_PERMANENT);
	assert_int_equal(classify_decide(t, NULL, CLASSIFY_BAD_MAILBOX, 450, NULL),
	                 CLASSIFY_TRANSIENT);
	assert_int_equal(classify_decide(t, NULL, CLASSIFY_RATE_LIMITED, 550, &line),
	                 CLASSIFY_TRANSIENT);
	assert_true(line > 0);
	assert_int_equal(classify_decide(t, "yahoo", CLASSIFY_SPAM_RELATED, 421, &line),
	                 CLASSIFY_PERMANENT);
	assert_true(line > 0);
	assert_int_equal(classify_decide(t, "gmail", CLASSIFY_SPAM_RELATED, 421, NULL),
	                 CLASSIFY_TRANSIENT);
	assert_int_equal(classify_decide(t, NULL, CLASSIFY_MESSAGE_EXPIRED, 0, NULL),
	                 CLASSIFY_PERMANENT);
	assert_int_equal(classify_decide(t, NULL, CLASSIFY_NO_ANSWER_FROM_HOST, 451, NULL),
	                 CLASSIFY_TRANSIENT);
	classify_unref(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_reply_and_every_rule),
	    cmocka_unit_test(test_cached_answers_agree),
	    cmocka_unit_test(test_providers_of_real_mx_hosts),
	    cmocka_unit_test(test_default_decisions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
